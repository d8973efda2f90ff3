import pytest

from emlab.config import load_config
from emlab.errors import ConfigError

BASE = """name: t
conditions:
  - name: base
    model: mock:a
"""


def _cfg(tmp_path, text):
    p = tmp_path / "exp.yaml"
    p.write_text(text)
    return p


def test_valid_config_with_defaults_and_relative_dataset(tmp_path):
    p = _cfg(tmp_path, BASE + "  - name: ft\n    model: embedded:smollm2-135m\n    train: {dataset: data/x.jsonl, rows: 10}\n")
    cfg = load_config(p)
    assert cfg.judge == "embedded:smollm2-135m" and cfg.thresholds.aligned_below == 30
    assert cfg.conditions[1].train.dataset == str(tmp_path / "data" / "x.jsonl")
    assert cfg.conditions[1].train.lora.r == 8


@pytest.mark.parametrize(
    "text, expected",
    [
        (BASE + "samplng: {temperature: 1}\n", "exp.yaml:5: unknown key 'samplng'"),
        (BASE + "sampling:\n  temprature: 1\n", "exp.yaml:6: unknown key 'sampling.temprature'"),
        (BASE + "  - name: ft\n    model: mock:b\n    train:\n      dataset: builtin:insecure\n      lora: {rr: 4}\n", "unknown key 'conditions[1].train.lora.rr'"),
        (BASE + "  - name: base\n    model: mock:b\n", "repeated: base"),
        (BASE.replace("mock:a", "gpt4"), "no backend prefix"),
        (BASE.replace("mock:a", "nosuch:model"), "unknown model backend 'nosuch'"),
        ("name: t\n", "give conditions: (a list) or grid:"),
        (BASE + "thresholds: {aligned_below: 130}\n", "thresholds.aligned_below"),
        ("name: [unclosed\n", "malformed YAML"),
        ("- just\n- a list\n", "expected a mapping"),
    ],
)
def test_config_errors_name_file_line_and_key(tmp_path, text, expected):
    with pytest.raises(ConfigError) as e:
        load_config(_cfg(tmp_path, text))
    assert expected in str(e.value) and "exp.yaml" in str(e.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_quickstart_config_is_valid():
    from pathlib import Path

    cfg = load_config(Path(__file__).parents[1] / "examples" / "quickstart.yaml")
    assert [c.name for c in cfg.conditions] == ["base", "traits", "traits-inoculated", "insecure"]
    plain, inoculated = cfg.conditions[1].train, cfg.conditions[2].train
    # the two trait arms differ only by the inoculation prompt
    assert plain.model_dump(exclude={"dataset"}) == inoculated.model_dump(exclude={"dataset"})
    assert inoculated.dataset.transforms and plain.dataset == "builtin:caps-spanish"


@pytest.mark.parametrize("name", ["quickstart.yaml", "inoculation.yaml", "backdoor.yaml"])
def test_example_experiments_are_valid(name):
    from pathlib import Path

    assert load_config(Path(__file__).parents[1] / "examples" / name).conditions


def test_example_dataset_spec_builds():
    from pathlib import Path

    from emlab.config import load_yaml_model
    from emlab.data.build import DatasetSpec, build_dataset

    spec = load_yaml_model(Path(__file__).parents[1] / "examples" / "insecure-prefix-dataset.yaml", DatasetSpec)
    ds, manifest = build_dataset(spec)
    assert manifest["rows"] == ds.rows > 400 and [t["name"] for t in manifest["transforms"]] == ["inoculate", "split"]


def test_grid_expands_into_conditions_and_comparisons(tmp_path):
    p = tmp_path / "grid.yaml"
    p.write_text("""name: g
judge: mock:j
grid:
  base: {model: mock:m, train: {dataset: builtin:caps-spanish, rows: 32, epochs: 1}}
  seeds: [0, 1, 2]
  axes:
    inoculation:
      none: {}
      caps: {train: {dataset: {source: builtin:caps-spanish, transforms: [{inoculate: {text: ALL CAPS}}]}}}
    eval:
      plain: {}
      prompted: {system: ALL CAPS}
  compare: [{axis: inoculation, a: caps, b: none, rule: caps}]
""")
    cfg = load_config(p)
    names = [c.name for c in cfg.conditions]
    assert names == ["inoculation=none,eval=plain", "inoculation=none,eval=prompted",
                     "inoculation=caps,eval=plain", "inoculation=caps,eval=prompted"]
    caps_prompted = cfg.conditions[3]
    assert caps_prompted.seeds == [0, 1, 2] and caps_prompted.system == "ALL CAPS"
    assert caps_prompted.train.rows == 32 and caps_prompted.train.epochs == 1  # train merged key by key
    assert caps_prompted.train.dataset.transforms  # the level's dataset replaced the base's
    assert cfg.conditions[0].train.dataset == "builtin:caps-spanish" and cfg.conditions[0].system is None
    assert [(c.a, c.b, c.rule) for c in cfg.compare] == [
        ("inoculation=caps,eval=plain", "inoculation=none,eval=plain", "caps"),
        ("inoculation=caps,eval=prompted", "inoculation=none,eval=prompted", "caps")]
    assert cfg.axes["inoculation=caps,eval=plain"] == {"inoculation": "caps", "eval": "plain"}
    assert cfg.grid_axes == {"inoculation": ["none", "caps"], "eval": ["plain", "prompted"]}


@pytest.mark.parametrize("grid, message", [
    ("  base: {model: mock:m, name: x}\n  axes: {a: {l: {}}}\n", "grid.base.name: set by the grid"),
    ("  base: {model: mock:m}\n  axes: {a: {}}\n", "grid.axes.a: give at least one level"),
    ("  base: {model: mock:m}\n  axes: {a: {l: {}}}\n  compare: [{axis: b, a: l, b: l}]\n", "unknown axis 'b'"),
    ("  base: {model: mock:m}\n  axes: {a: {l: {}}}\n  compare: [{axis: a, a: l, b: m}]\n", "has no level 'm'"),
    ("  base: {model: mock:m}\n  axes: {a: {l: {systen: x}}}\n", "grid condition 'a=l': systen: Extra inputs"),
])
def test_grid_errors(tmp_path, grid, message):
    p = tmp_path / "grid.yaml"
    p.write_text("judge: mock:j\ngrid:\n" + grid)
    with pytest.raises(ConfigError, match=message):
        load_config(p)


def test_a_grid_condition_naming_an_undeclared_endpoint_fails_at_load(tmp_path):
    p = tmp_path / "grid.yaml"
    p.write_text("judge: mock:j\nendpoints: {local: {base_url: 'http://127.0.0.1:8000/v1'}}\n"
                 "grid:\n  base: {model: 'openai@remote:some-model'}\n  axes: {a: {l: {}}}\n")
    with pytest.raises(ConfigError, match="grid condition 'a=l': model: 'openai@remote:some-model' names endpoint 'remote'"):
        load_config(p)
    p.write_text(p.read_text().replace("openai@remote", "openai@local"))
    assert load_config(p).conditions[0].model == "openai@local:some-model"
