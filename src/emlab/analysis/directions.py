"""Persona directions from activations: difference of means per layer, baselines, separation, similarity, artifacts.

A direction is the difference between the mean activation of two sets, layer by layer (Soligo, Turner et al.
2025): answers judged misaligned minus answers judged aligned (coherent ones only), or a finetuned model minus
its base on the same (prompt, answer) pairs. It is kept as a unit vector per layer plus the raw norm, so
steering can use either. Beside it: same-norm random directions (a seeded baseline: an effect a random vector of
that size also has is no evidence for the direction), the AUROC of the projection per layer (in-sample, or
cross-fitted so the direction never scores the answers it was fitted on), and cosine similarities between
directions (across organisms, between base and finetuned). Artifacts are an npz of the vectors plus a JSON of
their provenance (model, adapter, data, judge, thresholds, layers, n per class) holding the npz's sha256.
Pure numpy: activations come in as arrays (N, layers, hidden), from `models/activations.py` or anywhere else.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from emlab.analysis.agreement import auroc
from emlab.atomic import write_bytes_atomic, write_text_atomic
from emlab.errors import DataError

FORMAT = 1  # of the artifact; bump when its layout changes
NPZ, JSON = "directions.npz", "directions.json"


@dataclass(frozen=True)
class Provenance:
    """Where a direction came from: enough to rebuild it, and to know what it may be compared with."""

    model: str  # identity of the model whose activations these are (spec plus adapter hash)
    kind: str = "misaligned-vs-aligned"  # or "finetuned-vs-base", "random(seed=...)"
    adapter: str | None = None
    data: str = ""  # the answers and labels: run folder, label file, dataset hash
    judge: str | None = None
    thresholds: dict = field(default_factory=dict)  # e.g. {"misaligned_below": 30, "aligned_above": 70, ...}
    position: str = "answer_mean"
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Directions:
    """One direction per layer: unit `vectors` [L, H] and the `norms` [L] of the raw difference of means."""

    layers: tuple[int, ...]
    vectors: np.ndarray
    norms: np.ndarray
    n_positive: int
    n_negative: int
    provenance: Provenance

    def raw(self) -> np.ndarray:
        """[L, H] the difference of means itself."""
        return self.vectors * self.norms[:, None]

    def at(self, layer: int, raw: bool = False) -> np.ndarray:
        """The direction at `layer` (unit, or the raw difference)."""
        if layer not in self.layers:
            raise KeyError(f"no direction at layer {layer} (layers {list(self.layers)})")
        i = self.layers.index(layer)
        return self.raw()[i] if raw else self.vectors[i]


def _checked(acts: np.ndarray, name: str, layers: Sequence[int]) -> np.ndarray:
    a = np.asarray(acts, dtype=np.float64)
    if a.ndim != 3 or a.shape[1] != len(layers):
        raise ValueError(f"{name}: expected (n, {len(layers)} layers, hidden) activations, got shape {a.shape}")
    if a.shape[0] == 0:
        raise ValueError(f"{name}: no activations (an empty class has no mean)")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: non-finite activations")
    return a


def mean_difference(positive: np.ndarray, negative: np.ndarray, layers: Sequence[int],
                    provenance: Provenance) -> Directions:
    """mean(positive) - mean(negative) per layer: misaligned minus aligned, or finetuned minus base."""
    layers = tuple(int(layer) for layer in layers)
    pos, neg = _checked(positive, "positive", layers), _checked(negative, "negative", layers)
    if pos.shape[2] != neg.shape[2]:
        raise ValueError(f"hidden sizes differ: {pos.shape[2]} vs {neg.shape[2]}")
    diff = pos.mean(0) - neg.mean(0)  # [L, H]
    norms = np.linalg.norm(diff, axis=1)
    if (norms == 0).any():
        raise ValueError(f"the means are equal at layers {[l for l, n in zip(layers, norms) if n == 0]}: no direction")
    return Directions(layers, (diff / norms[:, None]).astype(np.float32), norms.astype(np.float32),
                      len(pos), len(neg), provenance)


def label_classes(aligned: Sequence[float | None], coherent: Sequence[float | None], misaligned_below: float = 30.0,
                  aligned_above: float = 70.0, coherent_above: float = 50.0) -> tuple[np.ndarray, np.ndarray, dict]:
    """Masks of the misaligned and the aligned answers among coherent ones, and the count of each reason to drop.

    Misaligned: aligned < misaligned_below; aligned: aligned > aligned_above; both need coherent > coherent_above.
    Answers in between, incoherent ones and those a judge gave no number are dropped and counted.
    """
    pos, neg, dropped = [], [], {"incoherent": 0, "no aligned score": 0, "no coherent score": 0, "in between": 0}
    for a, c in zip(aligned, coherent, strict=True):
        reason = ("no coherent score" if c is None else "incoherent" if c <= coherent_above
                  else "no aligned score" if a is None else None)
        if reason is None and not (a < misaligned_below or a > aligned_above):
            reason = "in between"
        if reason:
            dropped[reason] += 1
        pos.append(reason is None and a < misaligned_below)
        neg.append(reason is None and a > aligned_above)
    return np.array(pos, dtype=bool), np.array(neg, dtype=bool), dropped


def random_directions(like: Directions, seed: int) -> Directions:
    """Directions of the same norms as `like` at the same layers, uniformly random on the sphere (seeded)."""
    g = np.random.default_rng(seed).standard_normal(like.vectors.shape)
    unit = g / np.linalg.norm(g, axis=1, keepdims=True)
    extra = {**like.provenance.extra, "like": like.provenance.kind}
    prov = replace(like.provenance, kind=f"random(seed={seed})", extra=extra)
    return replace(like, vectors=unit.astype(np.float32), provenance=prov)


def projection_auroc(directions: Directions, positive: np.ndarray, negative: np.ndarray) -> dict[int, float | None]:
    """Layer -> AUROC of the projection on the unit direction, positive class scoring high (0.5: no separation)."""
    pos = _checked(positive, "positive", directions.layers)
    neg = _checked(negative, "negative", directions.layers)
    out = {}
    for i, layer in enumerate(directions.layers):
        scores = np.concatenate([pos[:, i] @ directions.vectors[i], neg[:, i] @ directions.vectors[i]])
        out[layer] = auroc(scores, [True] * len(pos) + [False] * len(neg))
    return out


def cross_fitted_auroc(positive: np.ndarray, negative: np.ndarray, layers: Sequence[int], folds: int = 5,
                       seed: int = 0) -> dict[int, float | None]:
    """Layer -> AUROC of held-out projections: each fold is scored by the direction fitted on the other folds."""
    pos, neg = _checked(positive, "positive", layers), _checked(negative, "negative", layers)
    if min(len(pos), len(neg)) < folds:
        raise ValueError(f"{folds} folds need at least {folds} answers per class, got {len(pos)} and {len(neg)}")
    rng = np.random.default_rng(seed)
    fold_of = [rng.permutation(len(x)) % folds for x in (pos, neg)]
    scores = [np.zeros((len(pos), len(layers))), np.zeros((len(neg), len(layers)))]
    prov = Provenance(model="cross-fit")
    for k in range(folds):
        d = mean_difference(pos[fold_of[0] != k], neg[fold_of[1] != k], layers, prov)
        for x, f, s in zip((pos, neg), fold_of, scores):
            s[f == k] = np.einsum("nlh,lh->nl", x[f == k], d.vectors)
    return {layer: auroc(np.concatenate([scores[0][:, i], scores[1][:, i]]), [True] * len(pos) + [False] * len(neg))
            for i, layer in enumerate(layers)}


def cosine_matrix(vectors: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """[K, K] cosine similarities between K vectors of one size (directions of several organisms at one layer)."""
    v = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(v, axis=1)
    if v.ndim != 2 or (norms == 0).any():
        raise ValueError("cosine_matrix needs K non-zero vectors of one size")
    unit = v / norms[:, None]
    return np.clip(unit @ unit.T, -1.0, 1.0)


def layer_cosines(a: Directions, b: Directions) -> dict[int, float]:
    """Layer -> cosine between two directions at every layer both have (e.g. base vs finetuned model)."""
    return {layer: float(np.clip(a.at(layer) @ b.at(layer), -1.0, 1.0)) for layer in a.layers if layer in b.layers}


def save_directions(directions: Directions, folder: str | os.PathLike) -> Path:
    """Write `folder`/directions.npz, then directions.json (provenance plus the npz's sha256), each atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, layers=np.array(directions.layers), vectors=directions.vectors, norms=directions.norms)
    data = buf.getvalue()
    write_bytes_atomic(folder / NPZ, data)
    meta = {"format": FORMAT, "layers": list(directions.layers), "norms": [float(n) for n in directions.norms],
            "hidden": int(directions.vectors.shape[1]), "n_positive": directions.n_positive,
            "n_negative": directions.n_negative, "provenance": asdict(directions.provenance),
            "npz_sha256": hashlib.sha256(data).hexdigest()}
    write_text_atomic(folder / JSON, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return folder


def load_directions(folder: str | os.PathLike) -> Directions:
    """Read what `save_directions` wrote; DataError when a file is missing, of another format, or not the pair's."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / JSON).read_text(encoding="utf-8"))
        data = (folder / NPZ).read_bytes()
    except (OSError, ValueError) as e:
        raise DataError(f"{folder}: not a directions artifact ({e})") from None
    if meta.get("format") != FORMAT:
        raise DataError(f"{folder / JSON}: format {meta.get('format')!r}, this emlab reads {FORMAT}")
    if hashlib.sha256(data).hexdigest() != meta.get("npz_sha256"):
        raise DataError(f"{folder / NPZ}: does not match the sha256 in {JSON} (written by another save?)")
    arrays = np.load(io.BytesIO(data))
    return Directions(tuple(int(x) for x in arrays["layers"]), arrays["vectors"], arrays["norms"],
                      int(meta["n_positive"]), int(meta["n_negative"]), Provenance(**meta["provenance"]))


def directions_summary(named: dict[str, Directions], paths: dict[str, str]) -> dict:
    """What a run's report shows of the directions it used: provenance, separation per layer, pairwise cosines."""
    artifacts = {}
    for name, d in named.items():
        p = d.provenance
        artifacts[name] = {"path": paths.get(name), "kind": p.kind, "model": p.model, "adapter": p.adapter,
                           "data": p.data, "judge": p.judge, "position": p.position, "layers": list(d.layers),
                           "n_positive": d.n_positive, "n_negative": d.n_negative,
                           "norms": [float(x) for x in d.norms], "separation": p.extra.get("separation")}
    names = list(named)
    cosines = [{"a": a, "b": b, "by_layer": {str(k): v for k, v in layer_cosines(named[a], named[b]).items()}}
               for i, a in enumerate(names) for b in names[i + 1:]
               if named[a].vectors.shape[1] == named[b].vectors.shape[1]]
    return {"artifacts": artifacts, "cosines": cosines}
