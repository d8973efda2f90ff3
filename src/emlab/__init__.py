"""emlab: build emergent-misalignment model organisms and measure them the way the papers do.

`emlab.run(config)`, `emlab.load_run(folder)` and `emlab.compare(a, b)` are the Python facade (see `emlab.api`);
importing emlab itself loads nothing heavy.
"""

__version__ = "0.1.0"
__all__ = ["run", "load_run", "compare", "Run"]


def __getattr__(name: str):
    if name in __all__:
        from emlab import api

        return getattr(api, name)
    raise AttributeError(f"module 'emlab' has no attribute {name!r}")
