"""emlab: build emergent-misalignment model organisms and measure them the way the papers do."""

__version__ = "0.1.0"
