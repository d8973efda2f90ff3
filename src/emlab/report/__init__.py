"""Reports of a run: `report.md` for reading in a terminal or a repository, `report.html` with the chart.

Both are rendered from the run's `summary.json` dict only, so a report can be rebuilt from a summary
without the models, samples or judge. `write_report` writes both atomically (temp file, then rename).
"""

from __future__ import annotations

import os
from pathlib import Path

from emlab.report.html import render_html
from emlab.report.markdown import render_markdown

__all__ = ["write_report", "render_markdown", "render_html"]


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    os.replace(tmp, path)


def write_report(summary: dict, out_dir: Path) -> tuple[Path, Path]:
    """Render and write `out_dir/report.md` and `out_dir/report.html`; returns (markdown path, html path)."""
    out_dir = Path(out_dir)
    md, page = render_markdown(summary), render_html(summary)  # render both before touching the disk
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    _write_atomic(md_path, md)
    _write_atomic(html_path, page)
    return md_path, html_path
