"""Reports of a run: `report.md` for reading in a terminal or a repository, `report.html` with the figures.

Both are rendered from the run's `summary.json` dict (plus, optionally, its sample rows for the
aligned-vs-coherent scatter), so a report can be rebuilt without the models or the judge. The content is
decided once in `document.py`; `markdown.py` and `html.py` render it. `write_report` writes both files
atomically (temp file, then rename).
"""

from __future__ import annotations

from pathlib import Path

from emlab.atomic import write_text_atomic

from emlab.report.html import render_html
from emlab.report.markdown import render_markdown

__all__ = ["write_report", "render_markdown", "render_html", "comparison_markdown"]




def write_report(summary: dict, out_dir: Path, samples: list[dict] | None = None) -> tuple[Path, Path]:
    """Render and write `out_dir/report.md` and `out_dir/report.html`; returns (markdown path, html path).

    `samples` are rows with `condition`, `question_id`, `question`, `answer` and metric values as keys; with
    numeric `aligned` and `coherent` values they add the aligned-vs-coherent scatter.
    """
    out_dir = Path(out_dir)
    md, page = render_markdown(summary, samples), render_html(summary, samples)  # both before touching the disk
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    write_text_atomic(md_path, md)
    write_text_atomic(html_path, page)
    return md_path, html_path


def comparison_markdown(comparison: dict) -> str:
    """One comparison of two runs (`emlab compare`) as Markdown: the comparisons table and its method."""
    from emlab.report.markdown import md_escape, md_table
    from emlab.report.rule_tables import comparison_methods, comparisons_table

    doc = {"comparisons": [comparison]}
    lines = [f"# emlab comparison: {md_escape(comparison.get('name', ''))}", "",
             f"Rule: {md_escape(comparison.get('rule_text') or comparison.get('rule', ''))}", "",
             md_table(comparisons_table(doc)), ""]
    lines += [f"({i}) {md_escape(m)}" for i, m in enumerate(comparison_methods(doc), 1)]
    return "\n".join(lines) + "\n"
