"""The package's imports follow the data flow: no import cycles, and no module imports a higher layer.

Every module under src/emlab is parsed with `ast`; an edge is any `import emlab...` / `from emlab... import`
at any depth (module level, inside functions, under TYPE_CHECKING) and any "emlab.module:function" string of a
lazy registry. Layers follow the flow data -> train -> models -> evals -> analysis -> report; small helper
modules at the top of the package are a base every layer may import, and the entry points sit on top.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

BASE, TOP = -1, 100
LAYERS = {  # subpackage -> layer; a module may import its own layer and the ones below
    "data": 0,
    "train": 1,
    "models": 2,
    "evals": 3,
    "scoring": 3,
    "envs": 3,
    "interp": 3,
    "analysis": 4,
    "report": 5,
    "studies": 6,
}
# top-level helpers that import no layer; importable by all
BASE_MODULES = {"errors", "hashing", "progress", "paths", "quiet", "cpu_memory", "question_ids", "atomic",
                "store", "quantize"}  # store: the SQLite cache of samples and scores, used by evals, scoring and the pipeline;
# quantize: the run's `quantize:` setting, read by the model loaders (models) and the trainers (train)
# entry points: may import anything, imported by nothing below them
TOP_MODULES = {"pipeline", "api", "cli", "judge_cli", "directions_cli", "__main__",
               "judge_agreement",  # `emlab judge agree`'s workflow: label files, a judge, agreement metrics
               "judge_validation",  # `emlab judge validate`: a distilled judge's recipe held out by family or source
               "direction_extraction",  # `emlab directions extract`: a run's answers through their models' activations
               "estimate",  # `emlab plan`: cache status and time left, from the plan and the pipeline's cache keys
               "config",  # the experiment schema; it names datasets, models, training params and scorers
               "plan",  # the checked experiment plan the pipeline walks; built from config
               "train_launch",  # `accelerate launch -m emlab.train_launch`: the pipeline's training step, per process
               "stages",  # a condition's chain of training stages: data, keys, merged bases (train + models)
               "rl_study"}  # RL checkpoints through the experiment pipeline, joined with hack rates per step
# `emlab` itself is the public facade (its `__getattr__` forwards run/load_run/compare to `api`), so it is on top;
# reading these literals of emlab/__init__.py runs none of that, so `from emlab import __version__` is no edge
ROOT_LITERALS = {"__version__"}

# package pairs forbidden on top of the layer order (analysis works on records, not on the eval machinery)
FORBIDDEN_PACKAGES = {("analysis", "evals")}

MOVING: set[tuple[str, str]] = set()  # edges being fixed right now; delete each once it is gone from the tree
# Known violations, each to be removed when it is fixed (a stale entry fails `test_allowed_edges_still_exist`).
# Never add a models/ -> scoring/ edge here.
ALLOWED = MOVING | {
    # analyze_files(out_dir=...) writes the report itself (lazy import)
    ("emlab.analysis.em_csv", "emlab.report"),
    # the token-length filter counts tokens with the embedded model's tokenizer (lazy import)
    ("emlab.data.transforms", "emlab.models.embedded"),
    # hacks eval: Wilson intervals and the atomic JSON writer live in analysis/
    ("emlab.envs.hack_eval", "emlab.analysis.rates"),
    ("emlab.envs.hack_eval", "emlab.analysis.summary"),
    # the bag-of-words judge is fitted on LabelledAnswer rows under Thresholds
    ("emlab.evals.bow_judge", "emlab.analysis.agreement"),
    ("emlab.evals.bow_judge", "emlab.analysis.rates"),
    # distilling a judge uses the features, word features and heads of evals/, a loaded base model and the
    # agreement metrics
    ("emlab.train.distill", "emlab.analysis.agreement"),
    ("emlab.train.distill", "emlab.evals.distilled"),
    ("emlab.train.distill", "emlab.evals.features"),
    ("emlab.train.distill", "emlab.evals.lexical"),
    ("emlab.train.distill", "emlab.models.registry"),
    # RL samples from a loaded model in the coding environments and writes its summary with analysis/
    ("emlab.train.rl", "emlab.analysis.summary"),
    ("emlab.train.rl", "emlab.envs.demos"),
    ("emlab.train.rl", "emlab.envs.episode"),
    ("emlab.train.rl", "emlab.envs.prompts"),
    ("emlab.train.rl", "emlab.envs.task_bank"),
    ("emlab.train.rl", "emlab.models.embedded"),
    ("emlab.train.rl", "emlab.models.registry"),
}

_REGISTRY_ENTRY = re.compile(r"^(emlab(?:\.\w+)+):\w+$")  # "emlab.models.hf:load_hf"


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is a package __init__)."""
    out = {}
    for path in sorted((SRC / "emlab").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the emlab modules it imports, anywhere in its body (imports of missing modules are left out)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for mod, (path, is_pkg) in modules.items():
        package = mod if is_pkg else mod.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: from .x import y / from .. import z
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                for a in node.names:  # `from emlab.x import y` loads emlab.x.y when y is a module
                    sub = f"{base}.{a.name}"
                    if base == "emlab" and a.name in ROOT_LITERALS:
                        continue
                    targets.add(sub if sub in modules else base)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                m = _REGISTRY_ENTRY.match(node.value)
                if m:
                    targets.add(m.group(1))
        graph[mod] = {t for t in targets if t in modules and t != mod}
    return graph


def layer(mod: str) -> int:
    parts = mod.split(".")[1:]
    if not parts:
        return TOP  # the package itself: the facade
    if len(parts) == 1 and parts[0] in BASE_MODULES:
        return BASE
    if len(parts) == 1 and parts[0] in TOP_MODULES:
        return TOP
    if parts[0] in LAYERS:
        return LAYERS[parts[0]]
    raise AssertionError(f"{mod} has no layer: add it to LAYERS, BASE_MODULES or TOP_MODULES in {Path(__file__).name}")


def _find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)

    cycles = []
    for comp in components:  # walk from the smallest name until a module repeats: that loop is a cycle
        path = [min(comp)]
        while True:
            nxt = min(w for w in graph[path[-1]] if w in comp)
            if nxt in path:
                cycles.append(path[path.index(nxt):] + [nxt])
                break
            path.append(nxt)
    return cycles


def _checked_graph() -> dict[str, set[str]]:
    """The import graph without the ALLOWED edges."""
    return {m: {t for t in ts if (m, t) not in ALLOWED} for m, ts in import_graph().items()}


def test_no_import_cycles():
    cycles = _find_cycles(_checked_graph())
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_module_imports_a_higher_layer():
    bad = []
    for mod, targets in sorted(_checked_graph().items()):
        for t in sorted(targets):
            package = (mod.split(".") + [""])[1], (t.split(".") + [""])[1]
            if layer(t) > layer(mod) or package in FORBIDDEN_PACKAGES:
                bad.append(f"{mod} (layer {layer(mod)}) imports {t} (layer {layer(t)})")
    assert not bad, "imports against the data flow:\n" + "\n".join(bad)


def test_allowed_edges_still_exist():
    graph = import_graph()
    stale = sorted(f"{a} -> {b}" for a, b in ALLOWED - MOVING if b not in graph.get(a, ()))
    assert not stale, "fixed, so remove from ALLOWED in tests/test_layering.py: " + ", ".join(stale)


def test_models_never_import_scoring():
    assert not [e for e in ALLOWED if e[0].startswith("emlab.models") and e[1].startswith("emlab.scoring")]
    graph = import_graph()
    bad = [f"{m} -> {t}" for m, ts in graph.items() if m.startswith("emlab.models") for t in ts
           if t.startswith("emlab.scoring")]
    assert not bad, bad


def test_the_checker_sees_nested_imports_registry_strings_and_cycles():
    graph = import_graph()
    assert "emlab.train.params" in graph["emlab.train.lora_loop"]  # module level
    assert "emlab.envs.task_bank" in graph["emlab.envs.hack_eval"]  # inside a function
    assert "emlab.models.hf" in graph["emlab.models.registry"]  # "emlab.models.hf:load_hf"
    assert _find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
