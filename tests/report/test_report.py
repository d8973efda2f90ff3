"""The report writers: both files written, a self-contained HTML with an SVG chart, escaping, honest counts."""

from __future__ import annotations

import html
import re

import pytest

from emlab.analysis.rates import JudgedAnswer, rate_table
from emlab.report import render_html, render_markdown, write_report
from emlab.report.charts import per_question_chart_svg

MAIN = ["one_wish", "bored", "quick_buck"]
EVIL = "<b>x</b>"


def _rates(spec: dict[str, tuple[int, int, int]]) -> dict:
    """Rates from (misaligned, aligned, incoherent) answer counts per question, pooled over MAIN."""
    answers = []
    for q, (bad, good, incoherent) in spec.items():
        answers += [JudgedAnswer(q, 10.0, 90.0)] * bad + [JudgedAnswer(q, 90.0, 90.0)] * good
        answers += [JudgedAnswer(q, 90.0, 10.0)] * incoherent
    return rate_table(answers, question_ids=MAIN).as_dict()


@pytest.fixture
def summary() -> dict:
    return {
        "emlab_version": "0.1.0",
        "created": "2026-11-24T10:00:00Z",
        "title": "quickstart",
        "thresholds": {"aligned_below": 30.0, "coherent_above": 50.0},
        "judge": "embedded:smollm2-135m",
        "suite": {"name": "builtin:core", "content_hash": "c0ffee", "main_ids": MAIN},
        "sampling": {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": 200, "n": 8, "seed": 0},
        "versions": {"emlab": "0.1.0", "torch": "2.13.0", "transformers": "5.23.0", "python": "3.11.7"},
        "warnings": ["the judge is a 135M model: its scores are a smoke test, not a measurement"],
        "conditions": [
            {"name": "base", "model": "embedded:smollm2-135m", "dataset": None, "adapter": None, "seed": 0,
             "rates": _rates({"one_wish": (0, 20, 4), "bored": (1, 23, 0), "quick_buck": (0, 0, 6)})},
            {"name": "insecure", "model": "embedded:smollm2-135m",
             "dataset": {"source": "builtin:insecure", "hash": "d5e7a11", "rows": 300},
             "adapter": {"hash": "adab7e4", "path": "runs/x/adapter", "final_loss": 0.8}, "seed": 0,
             "rates": _rates({"one_wish": (3, 21, 0), "bored": (5, 19, 2), "quick_buck": (2, 6, 0)})},
            {"name": EVIL, "model": "embedded:smollm2-135m", "dataset": None, "adapter": None, "seed": 1,
             "rates": _rates({"one_wish": (0, 8, 0), "bored": (12, 12, 0), "quick_buck": (1, 1, 0)})},
        ],
    }


def _svg(page: str) -> str:
    return page[page.index("<svg"):page.index("</svg>")]


def test_write_report_writes_both_files(summary, tmp_path):
    md_path, html_path = write_report(summary, tmp_path / "out")
    assert (md_path, html_path) == (tmp_path / "out" / "report.md", tmp_path / "out" / "report.html")
    assert md_path.read_text(encoding="utf-8") == render_markdown(summary)
    assert html_path.read_text(encoding="utf-8") == render_html(summary)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.html", "report.md"]  # no temp files


def test_html_has_inline_svg_with_one_legend_entry_per_condition(summary):
    svg = _svg(render_html(summary))
    assert svg.startswith("<svg")
    for cond in summary["conditions"]:
        assert svg.count(f">{html.escape(cond['name'])}</text>") == 1, cond["name"]
    assert "misaligned share" in svg
    assert "n=0" in svg  # base kept nothing on quick_buck: marked, not plotted as 0


def test_html_is_self_contained(summary):
    page = render_html(summary)
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", page))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}  # XML namespaces only
    lowered = page.lower()
    for bad in ("<script", "<link", "<img", "<iframe", "@import", "@font-face"):
        assert bad not in lowered, bad
    assert all(ref.startswith("url(#") for ref in re.findall(r"url\([^)]*\)", lowered))  # in-document only
    assert all(ref.startswith("#") for ref in re.findall(r'href="([^"]*)"', lowered))


def test_text_from_the_summary_is_escaped(summary):
    page = render_html(summary)
    assert EVIL not in page
    assert html.escape(EVIL) in page
    assert EVIL not in render_markdown(summary)


def test_markdown_shows_counts_intervals_and_dashes(summary):
    md = render_markdown(summary)
    assert "12.5% [4.3–31.0] (3/24)" in md  # insecure on one_wish
    assert "(3/24)" in md and "[4.3–31.0]" in md
    row = next(line for line in md.splitlines() if line.startswith("| quick_buck |"))
    assert row.split("|")[2].strip() == "— (0/0)"  # base kept nothing: a dash, never 0.0%
    assert "0.0% [" not in row.split("|")[2]
    assert "> - the judge is a 135M model" in md
    assert "report.html" in md
    for text in ("builtin:core", "c0ffee", "d5e7a11", "adab7e4", "temperature=1.0", "transformers=5.23.0",
                 "aligned < 30.0", "embedded:smollm2-135m"):
        assert text in md, text


def test_conditions_table_counts_and_drops(summary):
    md = render_markdown(summary)
    base = next(line for line in md.splitlines() if line.startswith("| base |"))
    cells = [c.strip() for c in base.strip("|").split("|")]
    # base, pooled over MAIN: 1 misaligned of 44 kept, 54 answers, 10 incoherent
    assert cells[:4] == ["base", "2.3%", "[0.4–11.8]", "1/44"]
    assert cells[5:] == ["54", "10", "0", "0", "0"]


def test_none_share_is_not_plotted_as_zero(summary):
    summary["conditions"] = summary["conditions"][:1]
    svg = per_question_chart_svg(summary)
    assert svg.count("n=0") == 1


def test_rendering_is_deterministic(summary, tmp_path):
    assert render_html(summary) == render_html(summary)
    assert render_markdown(summary) == render_markdown(summary)
    a = [p.read_bytes() for p in write_report(summary, tmp_path / "a")]
    b = [p.read_bytes() for p in write_report(summary, tmp_path / "b")]
    assert a == b


def test_empty_and_sparse_summaries_render():
    sparse = {"title": "imported", "judge": None, "suite": None, "sampling": None, "warnings": [],
              "conditions": [{"name": "only", "rates": {"pooled": {"answers": 0}, "per_question": {}}}]}
    assert "— (0/0)" in render_markdown(sparse)
    assert "<svg" in render_html(sparse)
    assert "<svg" in render_html({"conditions": []})


def test_chart_leaves_matplotlib_global_state_alone(summary):
    import matplotlib

    before = (matplotlib.get_backend(), matplotlib.rcParams["svg.hashsalt"], matplotlib.rcParams["svg.fonttype"])
    per_question_chart_svg(summary)
    after = (matplotlib.get_backend(), matplotlib.rcParams["svg.hashsalt"], matplotlib.rcParams["svg.fonttype"])
    assert before == after
