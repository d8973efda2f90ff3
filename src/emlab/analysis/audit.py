"""A cheap judge's rate corrected by a strong judge on a random subset: prediction-powered inference.

Why: a cheap judge (distilled, a small local model) labels every answer but errs in ways nobody measured on
these answers; a strong judge is too dear for all of them. Scoring a seeded random subset with the strong
judge measures the cheap judge's error there (the rectifier), and prediction-powered inference (PPI;
Angelopoulos et al. 2023, "Prediction-powered inference", Science 382) adds it back: the estimate targets the
share the strong judge would give on every answer, and its interval includes the cheap judge's error, so it
is valid however wrong the cheap judge is and narrows toward the cheap judge's own interval as the two agree.

A rule's share is a ratio (hits / kept), so the means E[hit and kept] and E[kept] are each PPI estimates and
the ratio's interval comes from the delta method. Answers come in strata (one per arm; a seed group stacks
its arms), each audited at its own rate and weighted by its share of the answers. Pure functions on arrays
and `Outcome`s; the audit step that picks the subset and calls the judge is `audit_step.py`.
"""

from __future__ import annotations

import hashlib
import json
from statistics import NormalDist
from typing import NamedTuple, Sequence

import numpy as np

from emlab.analysis.outcome import Outcome
from emlab.analysis.rates import wilson_interval

MIN_AUDITED = 2  # per stratum: fewer audited answers give no variance of the rectifier, hence no interval


def audit_rank(seed: int, stratum: str, key: str) -> str:
    """An answer's place in the audit order: a hash, so the subset never depends on order or interruption."""
    return hashlib.sha256(json.dumps([seed, stratum, key]).encode("utf-8")).hexdigest()


def audit_subset(keys: Sequence[str], n: int, seed: int, stratum: str) -> list[int]:
    """Positions of the at most `n` audited answers (first by `audit_rank`): a seeded simple random sample."""
    order = sorted(range(len(keys)), key=lambda i: (audit_rank(seed, stratum, keys[i]), i))
    return sorted(order[:n])


class Stratum(NamedTuple):
    """One arm's 0/1 labels: the cheap judge's on all N answers, both judges' on the n audited ones."""

    cheap_hit: np.ndarray  # (N,) hit and kept under the cheap judge's scores
    cheap_kept: np.ndarray  # (N,)
    audited: np.ndarray  # (n,) positions into the N answers
    strong_hit: np.ndarray  # (n,) hit and kept under the strong judge's scores
    strong_kept: np.ndarray  # (n,)


def _var(x: np.ndarray) -> float:
    return float(np.var(x, ddof=1)) if len(x) > 1 else 0.0


def _cov(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.cov(x, y, ddof=1)[0, 1]) if len(x) > 1 else 0.0


def ppi_means(strata: Sequence[Stratum]) -> tuple[float, float]:
    """(E[hit and kept], E[kept]): the cheap labels' means plus the audited rectifiers, weighted by stratum size."""
    total = sum(len(s.cheap_hit) for s in strata)
    mu_y = mu_c = 0.0
    for s in strata:
        w = len(s.cheap_hit) / total
        mu_y += w * (s.cheap_hit.mean() + (s.strong_hit - s.cheap_hit[s.audited]).mean())
        mu_c += w * (s.cheap_kept.mean() + (s.strong_kept - s.cheap_kept[s.audited]).mean())
    return float(mu_y), float(mu_c)


def ppi_ratio(strata: Sequence[Stratum], confidence: float = 0.95) -> dict:
    """The PPI share hits/kept with a delta-method normal interval clipped to [0, 1]; None with a reason when undefined.

    Influence terms (fY - r fC)/muC over all N answers and ((Y - fY) - r (C - fC))/muC over the n audited;
    variance = var_N/N + var_n/n + 2 cov/N per stratum (the covariance because the audited answers are among the
    N: with every answer audited the estimate is the strong judge's share and the variance its own).
    """
    strata = [s for s in strata if len(s.cheap_hit)]
    if not strata:
        return {"share": None, "ci": None, "se": None, "reason": "no answers"}
    short = sum(len(s.audited) < MIN_AUDITED for s in strata)
    if short:
        return {"share": None, "ci": None, "se": None,
                "reason": f"{short} stratum(s) with fewer than {MIN_AUDITED} audited answers"}
    mu_y, mu_c = ppi_means(strata)
    if mu_c <= 0:
        return {"share": None, "ci": None, "se": None, "reason": "no answer kept (corrected)"}
    r = mu_y / mu_c
    total = sum(len(s.cheap_hit) for s in strata)
    var = 0.0
    for s in strata:
        n_all, w = len(s.cheap_hit), len(s.cheap_hit) / total
        phi = (s.cheap_hit - r * s.cheap_kept) / mu_c
        psi = ((s.strong_hit - s.cheap_hit[s.audited]) - r * (s.strong_kept - s.cheap_kept[s.audited])) / mu_c
        var += w * w * (_var(phi) / n_all + _var(psi) / len(psi) + 2 * _cov(phi[s.audited], psi) / n_all)
    se = float(np.sqrt(max(var, 0.0)))
    share = min(max(r, 0.0), 1.0)
    if se == 0.0:  # no spread and no disagreement: a zero-width interval would claim certainty
        hits = int(sum(s.strong_hit.sum() for s in strata))
        kept = int(sum(s.strong_kept.sum() for s in strata))
        ci = wilson_interval(hits, kept, confidence)
        return {"share": share, "ci": list(ci) if ci else None, "se": 0.0,
                "method": "no variance: the strong judge's Wilson interval on the audited answers"}
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    return {"share": share, "ci": [max(0.0, r - z * se), min(1.0, r + z * se)], "se": se,
            "method": "PPI, delta method"}


def agreement(cheap: Sequence[Outcome], strong: Sequence[Outcome]) -> dict:
    """How the two judges' outcomes of the same audited answers compare; `flagged` = they differ on kept or hit."""
    c = {"audited": len(cheap), "both_kept": 0, "hit_hit": 0, "hit_miss": 0, "miss_hit": 0, "miss_miss": 0,
         "kept_cheap_only": 0, "kept_strong_only": 0, "neither_kept": 0}
    for a, b in zip(cheap, strong, strict=True):
        if a.kept and b.kept:
            c["both_kept"] += 1
            c[("hit" if a.hit else "miss") + "_" + ("hit" if b.hit else "miss")] += 1
        elif a.kept:
            c["kept_cheap_only"] += 1
        elif b.kept:
            c["kept_strong_only"] += 1
        else:
            c["neither_kept"] += 1
    c["flagged"] = c["hit_miss"] + c["miss_hit"] + c["kept_cheap_only"] + c["kept_strong_only"]
    c["agree"] = c["audited"] - c["flagged"]
    return c


def _rate(outcomes: Sequence[Outcome], interval: bool = True) -> dict:
    kept = sum(o.kept for o in outcomes)
    hits = sum(o.kept and o.hit for o in outcomes)
    out = {"hits": hits, "kept": kept, "share": hits / kept if kept else None}
    if interval:
        ci = wilson_interval(hits, kept)
        out["ci"] = list(ci) if ci else None
    return out


class AuditedOutcomes(NamedTuple):
    """One stratum under one rule: the cheap outcome of every answer, and the strong outcomes of the audited ones."""

    cheap: Sequence[Outcome]  # (N,)
    audited: Sequence[int]  # (n,) positions into `cheap`
    strong: Sequence[Outcome]  # (n,)


def stratum_of(a: AuditedOutcomes) -> Stratum:
    """Outcomes as the 0/1 arrays PPI reads."""
    def arrays(outs: Sequence[Outcome]) -> tuple[np.ndarray, np.ndarray]:
        return (np.array([o.kept and o.hit for o in outs], dtype=float), np.array([o.kept for o in outs], dtype=float))

    cheap_hit, cheap_kept = arrays(a.cheap)
    strong_hit, strong_kept = arrays(a.strong)
    return Stratum(cheap_hit, cheap_kept, np.asarray(a.audited, dtype=int), strong_hit, strong_kept)


def rule_audit(strata: Sequence[AuditedOutcomes], confidence: float = 0.95) -> dict:
    """One rule's audit over one arm (one stratum) or a seed group (its arms): rates, agreement and the PPI share."""
    cheap_all = [o for s in strata for o in s.cheap]
    cheap_sub = [s.cheap[i] for s in strata for i in s.audited]
    strong_sub = [o for s in strata for o in s.strong]
    return {
        "answers": len(cheap_all),
        "cheap": _rate(cheap_all),
        "cheap_subset": _rate(cheap_sub, interval=False),
        "strong_subset": _rate(strong_sub),
        "agreement": agreement(cheap_sub, strong_sub),
        "ppi": ppi_ratio([stratum_of(s) for s in strata], confidence),
    }
