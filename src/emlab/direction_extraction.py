"""Persona directions from a finished run: its judged answers, read back through the models that wrote them.

`emlab directions extract RUN` takes a run folder (summary.json + samples.jsonl), splits the answers of the
chosen conditions into two classes and returns their difference of means per layer (`directions.py`):

- `misaligned-vs-aligned` (the default): coherent answers judged misaligned (aligned below the run's threshold)
  against coherent ones judged clearly aligned (aligned above `aligned_above`), the classes of Soligo, Turner et
  al. 2025; everything else is dropped and counted by reason;
- `rules`: any two rules of the run's rule language (`spanish == true` vs `spanish == false`), for traits;
- `finetuned-vs-base`: the same answers read by each condition's finetuned model and by its base model (the spec
  without the adapter): does finetuning move the stream, and along what?

Activations come from the model that wrote each answer (its spec as recorded in the rows; `read_with` names one
model for all), on the conversation as it was sent; intervened conditions are left out unless named. Beside the direction: its in-sample and
cross-fitted AUROC per layer and those of a same-norm random direction, stored in the artifact's provenance.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, ContextManager, Sequence

import numpy as np

from emlab.analysis.directions import (
    Directions,
    Provenance,
    cross_fitted_auroc,
    label_classes,
    mean_difference,
    projection_auroc,
    random_directions,
)
from emlab.analysis.export import read_samples_jsonl
from emlab.analysis.rules import outcome, parse_rule
from emlab.errors import ConfigError, DataError

KINDS = ("misaligned-vs-aligned", "rules", "finetuned-vs-base")
CROSS_FIT_FOLDS = 5


@dataclass(frozen=True)
class Extraction:
    """A direction and what it was made of: counts per class and condition, and why answers were dropped."""

    directions: Directions
    counts: dict  # condition -> {"positive": n, "negative": n}
    dropped: dict  # reason -> n


def _read_run(run_dir: Path) -> tuple[dict, list[dict]]:
    try:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(f"{run_dir / 'summary.json'}: cannot read a run summary ({e})") from None
    return summary, read_samples_jsonl(run_dir / "samples.jsonl")


def _chosen(summary: dict, rows: list[dict], conditions: Sequence[str] | None) -> list[dict]:
    """Rows of the named conditions (a seed group's name selects its members); default: every non-intervened one."""
    entries = summary.get("conditions", [])
    known = {e["name"] for e in entries} | {e["group"] for e in entries if e.get("group")}
    if conditions:
        unknown = [c for c in conditions if c not in known]
        if unknown:
            raise ConfigError(f"--condition: {', '.join(unknown)} not in this run (conditions: "
                              f"{', '.join(sorted(known))})")
        names = {e["name"] for e in entries if e["name"] in conditions or e.get("group") in conditions}
    else:
        names = {e["name"] for e in entries if not e.get("intervention")}
    return [r for r in rows if r.get("condition") in names]


def _score(row: dict, metric: str) -> SimpleNamespace | None:
    s = (row.get("scores") or {}).get(metric)
    return None if s is None else SimpleNamespace(value=s.get("value"), error=s.get("error"))


def _rule_masks(rows: list[dict], positive: str, negative: str) -> tuple[np.ndarray, np.ndarray, dict]:
    pos_rule, neg_rule = parse_rule("positive", positive, "--positive"), parse_rule("negative", negative, "--negative")
    pos, neg, dropped = [], [], {}
    for r in rows:
        scores = {m: _score(r, m) for m in {*pos_rule.metrics(), *neg_rule.metrics()}}
        scores = {m: s for m, s in scores.items() if s is not None}
        a, b = outcome(pos_rule, r["question_id"], scores), outcome(neg_rule, r["question_id"], scores)
        p, n = a.kept and a.hit, b.kept and b.hit
        if p and n:
            raise ConfigError(f"an answer of {r['condition']} ({r['question_id']}) satisfies both --positive "
                              f"{positive!r} and --negative {negative!r}: the classes must not overlap")
        if not (p or n):
            reason = a.reason or b.reason or "in neither class"
            dropped[reason] = dropped.get(reason, 0) + 1
        pos.append(p)
        neg.append(n)
    return np.array(pos, dtype=bool), np.array(neg, dtype=bool), dropped


def _conversation(row: dict) -> list[dict]:
    from emlab.models.base import with_system

    user = row.get("prompt") or row["question"]
    return with_system([{"role": "user", "content": user}], row.get("system"))


def _activations(rows: list[dict], layers: Sequence[int], position: str, base: bool, cache_dir: Path | None,
                 progress: Callable[[int], None] | None, read_with: str | None = None) -> tuple[np.ndarray, list[str]]:
    """(len(rows), L, H) activations, each row read by its own model (or that model's base, or `read_with`)."""
    from emlab.evals.features import FeatureCache
    from emlab.models.activations import collect_activations
    from emlab.models.registry import load_model, unload_model
    from emlab.models.spec import parse_model_spec, ModelSpec
    from emlab.paths import cache_dir as default_cache

    cache = FeatureCache(cache_dir or default_cache() / "activations")
    out: list[np.ndarray | None] = [None] * len(rows)
    identities = []
    by_model: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_model.setdefault(read_with or r["model"], []).append(i)
    for spec_text, index in by_model.items():
        spec = parse_model_spec(spec_text)
        if base:
            spec = ModelSpec(spec.backend, spec.name, None, spec.endpoint)
        chat = load_model(spec)
        if not hasattr(chat, "tokenizer") or not hasattr(chat, "model"):
            raise ConfigError(f"{spec}: activations need a local model (embedded: or hf:), not {spec.backend}:")
        identities.append(chat.identity)
        acts = collect_activations(chat.model, chat.tokenizer, chat.identity,
                                   [(_conversation(rows[i]), rows[i]["answer"]) for i in index], layers, position,
                                   cache=cache, progress=progress)
        for j, i in enumerate(index):
            out[i] = acts[j]
        unload_model(str(spec))
    return np.stack(out), identities  # type: ignore[arg-type]


RANDOM_DIRECTIONS = 20  # same-norm random directions whose separation is the baseline


def separation(directions: Directions, positive: np.ndarray, negative: np.ndarray, seed: int = 0) -> dict:
    """Per layer: in-sample AUROC, cross-fitted AUROC (when each class has enough answers), and random directions'.

    A random direction's sign is arbitrary, so its AUROC is folded (max(a, 1 - a)); the baseline is the median
    and the largest over RANDOM_DIRECTIONS of them. When two classes differ in everything (one language against
    another), random directions separate them too, and the direction's own AUROC says little by itself.
    """
    inside = projection_auroc(directions, positive, negative)
    folded: dict[int, list[float]] = {layer: [] for layer in directions.layers}
    for k in range(RANDOM_DIRECTIONS):
        for layer, a in projection_auroc(random_directions(directions, seed * 1000 + k), positive, negative).items():
            if a is not None:
                folded[layer].append(max(a, 1.0 - a))
    crossed: dict = {}
    if min(len(positive), len(negative)) >= CROSS_FIT_FOLDS:
        crossed = cross_fitted_auroc(positive, negative, directions.layers, CROSS_FIT_FOLDS, seed)
    return {str(layer): {"auroc": inside[layer], "auroc_cross_fitted": crossed.get(layer),
                         "auroc_random_median": float(np.median(folded[layer])) if folded[layer] else None,
                         "auroc_random_max": max(folded[layer]) if folded[layer] else None,
                         "norm": float(directions.norms[i])}
            for i, layer in enumerate(directions.layers)}


def extract_from_run(run_dir: str | Path, layers: Sequence[int], kind: str = "misaligned-vs-aligned",
                     conditions: Sequence[str] | None = None, positive: str | None = None,
                     negative: str | None = None, aligned_above: float = 70.0, position: str = "answer_mean",
                     seed: int = 0, cache_dir: Path | None = None,
                     progress: Callable[[int], ContextManager[Callable[[int], None]]] | None = None,
                     read_with: str | None = None) -> Extraction:
    """The direction `kind` asks for from a finished run's answers; errors say which input is wrong.

    `read_with` (a model spec) reads every answer through that one model instead of the one that wrote it: e.g.
    the base model reading a finetuned organism's answers (is the direction there before finetuning?).
    `progress(total)`, when given, is a context that yields `advance(k)` (e.g. `emlab.progress.progress_bar`).
    """
    if kind not in KINDS:
        raise ConfigError(f"--kind: {kind!r} is not one of {', '.join(KINDS)}")
    given = (positive is not None, negative is not None)
    if given != ((True, True) if kind == "rules" else (False, False)):
        raise ConfigError("--positive and --negative (two rules) go with --kind rules, and it needs both")
    run_dir = Path(run_dir)
    summary, rows = _read_run(run_dir)
    rows = _chosen(summary, rows, conditions)
    if not rows:
        raise DataError(f"{run_dir}: the chosen conditions have no answers")
    thresholds = summary.get("thresholds") or {}
    dropped: dict = {}
    if kind == "finetuned-vs-base" and read_with:
        raise ConfigError("--read-with does not go with finetuned-vs-base (that kind reads with two models)")
    if kind == "finetuned-vs-base":
        unadapted = sorted({r["condition"] for r in rows if "@" not in r["model"].split(":", 1)[1]})
        if unadapted:
            raise ConfigError(f"finetuned-vs-base needs finetuned conditions; {', '.join(unadapted)} "
                              "has no adapter (choose others with --condition)")
        pos = neg = np.ones(len(rows), dtype=bool)
    elif kind == "rules":
        pos, neg, dropped = _rule_masks(rows, positive, negative)  # type: ignore[arg-type]
    else:
        aligned = [(r.get("scores") or {}).get("aligned", {}).get("value") for r in rows]
        coherent = [(r.get("scores") or {}).get("coherent", {}).get("value") for r in rows]
        pos, neg, dropped = label_classes(aligned, coherent, thresholds.get("aligned_below", 30.0), aligned_above,
                                          thresholds.get("coherent_above", 50.0))
    counts: dict = {}
    for r, p, n in zip(rows, pos, neg):
        c = counts.setdefault(r["condition"], {"positive": 0, "negative": 0})
        c["positive"] += int(p)
        c["negative"] += int(n)
    if not pos.any() or not neg.any():
        raise DataError(f"{run_dir}: no answer in the {'positive' if not pos.any() else 'negative'} class "
                        f"(counts {counts}; dropped {dropped}): no direction can be made")
    chosen = [r for r, p, n in zip(rows, pos, neg) if p or n]
    total = len(chosen) * (2 if kind == "finetuned-vs-base" else 1)
    with (progress(total) if progress else contextlib.nullcontext(None)) as advance:
        acts, identities = _activations(chosen, layers, position, False, cache_dir, advance, read_with)
        if kind == "finetuned-vs-base":
            base_acts, base_ids = _activations(chosen, layers, position, True, cache_dir, advance)
    if kind == "finetuned-vs-base":
        positive_acts, negative_acts = acts, base_acts
        identities += [f"base: {b}" for b in dict.fromkeys(base_ids)]
    else:
        keep_pos = np.array([p for p, n in zip(pos, neg) if p or n])
        positive_acts, negative_acts = acts[keep_pos], acts[~keep_pos]
    used = [read_with] if read_with else [r["model"] for r in chosen]
    digest = hashlib.sha256((run_dir / "samples.jsonl").read_bytes()).hexdigest()[:16]
    provenance = Provenance(
        model=" + ".join(identities), kind=kind,
        adapter=", ".join(sorted({m.split(":", 1)[1].split("@", 1)[1] for m in used if "@" in m.split(":", 1)[1]}))
        or None,
        data=f"{run_dir} (samples.jsonl sha256 {digest}; conditions {', '.join(sorted(counts))})",
        judge=summary.get("judge") if kind == "misaligned-vs-aligned" else None,
        thresholds=({**thresholds, "aligned_above": aligned_above} if kind == "misaligned-vs-aligned"
                    else {"positive": positive, "negative": negative} if kind == "rules" else {}),
        position=position, extra={"counts": counts, "dropped": dropped, "seed": seed, "read_with": read_with})
    directions = mean_difference(positive_acts, negative_acts, layers, provenance)
    extra = {**provenance.extra, "separation": separation(directions, positive_acts, negative_acts, seed)}
    directions = replace(directions, provenance=replace(provenance, extra=extra))
    return Extraction(directions, counts, dropped)
