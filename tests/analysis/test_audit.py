"""Prediction-powered inference for audited rates: coverage, exactness, shrinkage, the seeded subset, agreement."""

from __future__ import annotations

import numpy as np
import pytest

from emlab.analysis.audit import (
    AuditedOutcomes,
    Stratum,
    agreement,
    audit_subset,
    ppi_means,
    ppi_ratio,
    rule_audit,
)
from emlab.analysis.outcome import Outcome
from emlab.analysis.rates import wilson_interval

P_KEPT, P_HIT = 0.7, 0.2  # the strong judge's truth: hits/kept -> 0.2


def _truth(rng: np.random.Generator, n_all: int) -> tuple[np.ndarray, np.ndarray]:
    kept = rng.random(n_all) < P_KEPT
    return kept & (rng.random(n_all) < P_HIT), kept


def _cheap(rng: np.random.Generator, hit: np.ndarray, kept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A biased cheap judge: misses 40% of hits, 3% false alarms, drops 10% of kept answers, keeps 5% of the rest."""
    n_all = len(kept)
    f_kept = (kept & (rng.random(n_all) > 0.1)) | (~kept & (rng.random(n_all) < 0.05))
    f_hit = f_kept & ((hit & (rng.random(n_all) > 0.4)) | (~hit & (rng.random(n_all) < 0.03)))
    return f_hit, f_kept


def _draw(rng: np.random.Generator, n_all: int, n: int) -> Stratum:
    hit, kept = _truth(rng, n_all)
    f_hit, f_kept = _cheap(rng, hit, kept)
    aud = np.sort(rng.choice(n_all, n, replace=False))
    return Stratum(f_hit.astype(float), f_kept.astype(float), aud, hit[aud].astype(float), kept[aud].astype(float))


def test_ppi_interval_covers_the_true_share_and_the_naive_cheap_interval_does_not():
    rng = np.random.default_rng(0)
    draws, covered, naive = 1500, 0, 0
    for _ in range(draws):
        s = _draw(rng, 2000, 200)
        lo, hi = ppi_ratio([s])["ci"]
        covered += lo <= P_HIT <= hi
        nlo, nhi = wilson_interval(int(s.cheap_hit.sum()), int(s.cheap_kept.sum()))
        naive += nlo <= P_HIT <= nhi
    assert 0.93 <= covered / draws <= 0.97, covered / draws
    assert naive / draws < 0.5, naive / draws  # the cheap judge's own interval is confidently wrong


def test_a_group_of_arms_audited_at_different_rates_still_covers():
    rng = np.random.default_rng(1)
    draws, covered = 800, 0
    for _ in range(draws):
        lo, hi = ppi_ratio([_draw(rng, 1500, 100), _draw(rng, 200, 100)])["ci"]
        covered += lo <= P_HIT <= hi
    assert 0.92 <= covered / draws <= 0.975, covered / draws


def test_ppi_is_the_strong_share_when_the_judges_agree_or_every_answer_is_audited():
    rng = np.random.default_rng(2)
    hit, kept = _truth(rng, 500)
    aud = np.sort(rng.choice(500, 60, replace=False))
    same = Stratum(hit.astype(float), kept.astype(float), aud, hit[aud].astype(float), kept[aud].astype(float))
    assert ppi_ratio([same])["share"] == pytest.approx(hit.sum() / kept.sum())
    f_hit, f_kept = _cheap(rng, hit, kept)
    everything = np.arange(500)
    full = Stratum(f_hit.astype(float), f_kept.astype(float), everything, hit.astype(float), kept.astype(float))
    r = ppi_ratio([full])
    share = hit.sum() / kept.sum()
    assert r["share"] == pytest.approx(share)
    # and its variance is the strong judge's own delta-method variance (the covariance term makes it exact)
    phi = (hit - share * kept) / kept.mean()
    assert r["se"] == pytest.approx(np.sqrt(np.var(phi, ddof=1) / 500))
    assert ppi_means([full]) == pytest.approx((hit.mean(), kept.mean()))


def test_the_interval_shrinks_as_more_answers_are_audited():
    rng = np.random.default_rng(3)
    hit, kept = _truth(rng, 4000)
    f_hit, f_kept = _cheap(rng, hit, kept)
    keys = [str(i) for i in range(4000)]
    widths = []
    for n in (25, 100, 400, 1600):
        aud = np.array(audit_subset(keys, n, seed=0, stratum="a"))
        lo, hi = ppi_ratio([Stratum(f_hit * 1.0, f_kept * 1.0, aud, hit[aud] * 1.0, kept[aud] * 1.0)])["ci"]
        widths.append(hi - lo)
    assert widths == sorted(widths, reverse=True) and widths[-1] < widths[0] / 4


def test_the_subset_is_fixed_by_seed_stratum_and_keys_not_by_order():
    keys = [f"q{i % 7}|{i}" for i in range(300)]
    picked = {keys[i] for i in audit_subset(keys, 40, seed=5, stratum="arm")}
    shuffled = list(reversed(keys))
    assert {shuffled[i] for i in audit_subset(shuffled, 40, seed=5, stratum="arm")} == picked
    assert {keys[i] for i in audit_subset(keys, 10, seed=5, stratum="arm")} < picked  # a smaller n is a prefix
    assert {keys[i] for i in audit_subset(keys, 40, seed=6, stratum="arm")} != picked
    assert {keys[i] for i in audit_subset(keys, 40, seed=5, stratum="other")} != picked
    assert audit_subset(keys[:5], 40, seed=5, stratum="arm") == [0, 1, 2, 3, 4]  # fewer answers than n: all


def test_undefined_and_degenerate_estimates_say_why():
    one = Stratum(np.zeros(10), np.ones(10), np.array([3]), np.zeros(1), np.ones(1))
    assert ppi_ratio([one])["share"] is None and "fewer than 2 audited" in ppi_ratio([one])["reason"]
    nothing_kept = Stratum(np.zeros(10), np.zeros(10), np.array([1, 2]), np.zeros(2), np.zeros(2))
    assert ppi_ratio([nothing_kept])["reason"].startswith("no answer kept")
    # no hit anywhere and no disagreement: not a zero-width interval but the strong judge's Wilson interval
    calm = Stratum(np.zeros(50), np.ones(50), np.arange(10), np.zeros(10), np.ones(10))
    r = ppi_ratio([calm])
    assert r["share"] == 0.0 and r["ci"] == pytest.approx(list(wilson_interval(0, 10))) and "Wilson" in r["method"]


def _o(kept: bool, hit: bool = False) -> Outcome:
    return Outcome("q", kept, hit, None if kept else "fails coherent > 50")


def test_agreement_counts_every_audited_answer_once():
    cheap = [_o(True, True), _o(True, True), _o(True, False), _o(True, False), _o(True), _o(False), _o(False)]
    strong = [_o(True, True), _o(True, False), _o(True, True), _o(True, False), _o(False), _o(True), _o(False)]
    a = agreement(cheap, strong)
    assert (a["hit_hit"], a["hit_miss"], a["miss_hit"], a["miss_miss"]) == (1, 1, 1, 1)
    assert (a["kept_cheap_only"], a["kept_strong_only"], a["neither_kept"]) == (1, 1, 1)
    assert a["flagged"] == 4 and a["agree"] == 3 and a["audited"] == 7


def test_rule_audit_reports_cheap_strong_and_corrected_shares():
    cheap = [_o(True, i < 10) for i in range(100)]  # cheap: 10% hits
    audited = list(range(0, 100, 4))  # 25 audited; the strong judge also calls 1 in 4 of the cheap misses a hit
    strong = [_o(True, i < 10 or i % 16 == 0) for i in audited]
    e = rule_audit([AuditedOutcomes(cheap, audited, strong)])
    assert e["cheap"]["share"] == 0.10 and e["answers"] == 100
    assert e["strong_subset"]["kept"] == 25 and e["agreement"]["miss_hit"] == sum(i >= 10 and i % 16 == 0 for i in audited)
    assert e["ppi"]["share"] > e["cheap"]["share"] and e["ppi"]["ci"][0] < e["ppi"]["share"] < e["ppi"]["ci"][1]
