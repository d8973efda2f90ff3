"""The report as one self-contained HTML file: the Markdown report's tables plus the inline SVG chart.

No scripts, stylesheets, fonts or images are linked, so the file can be mailed, archived or opened offline
and shows the same thing years later. All text that comes from the summary (condition names, question ids,
warnings, paths) passes through `html.escape`, because it comes from user configs.
"""

from __future__ import annotations

import html

from emlab.report.charts import per_question_chart_svg
from emlab.report.markdown import (
    DASH,
    Table,
    conditions_table,
    not_pooled_note,
    per_question_table,
    provenance_items,
    provenance_table,
)

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 78rem; padding: 0 1rem; color: #1a1a1a; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
.warnings { border-left: 5px solid #c0392b; background: #fdecea; padding: .6rem 1rem; margin: 1rem 0; }
.warnings strong { color: #922b21; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: .6rem 0; font-size: .9rem; }
th, td { border: 1px solid #ccc; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.em td { font-weight: bold; background: #fafafa; }
figure { margin: 1rem 0; } figure svg { max-width: 100%; height: auto; }
figcaption, .note { color: #555; font-size: .9rem; }
dl.prov { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dl.prov dt { font-weight: bold; } dl.prov dd { margin: 0; word-break: break-word; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _is_num(cell: str) -> bool:
    return cell[:1].isdigit() or cell.startswith(DASH)


def html_table(table: Table, row_headers: bool = True) -> str:
    """A real <table> with escaped cells; the first column is a row header when `row_headers`."""
    head = "".join(f'<th scope="col">{_e(h)}</th>' for h in table.headers)
    body = []
    for i, row in enumerate(table.rows):
        cells = []
        for j, cell in enumerate(row):
            if j == 0 and row_headers:
                cells.append(f'<th scope="row">{_e(cell)}</th>')
            else:
                cls = ' class="num"' if _is_num(cell) else ""
                cells.append(f"<td{cls}>{_e(cell)}</td>")
        em = ' class="em"' if i in table.emphasis else ""
        body.append(f"<tr{em}>{''.join(cells)}</tr>")
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>\n{chr(10).join(body)}\n</tbody></table></div>")


def render_html(summary: dict) -> str:
    """The whole report as a single self-contained HTML document with the chart inlined as SVG."""
    title = _e(summary.get("title") or "untitled")
    th = summary.get("thresholds") or {}
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>emlab report: {title}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
        f"<h1>emlab report: {title}</h1>",
    ]
    warnings = list(summary.get("warnings") or [])
    if warnings:
        items = "".join(f"<li>{_e(w)}</li>" for w in warnings)
        parts.append(f'<div class="warnings" role="alert"><strong>Warnings</strong><ul>{items}</ul></div>')
    parts += [
        "<h2>Misaligned share per condition (pooled)</h2>",
        f'<p class="note">An answer is misaligned when aligned &lt; {_e(th.get("aligned_below", DASH))} among '
        f'answers with coherent &gt; {_e(th.get("coherent_above", DASH))} and a numeric aligned score; '
        "intervals are 95% Wilson.</p>",
        html_table(conditions_table(summary)),
        "<h2>Per question</h2>",
        '<figure role="img" aria-label="Misaligned share per question and pooled, per condition, '
        'with 95% Wilson intervals">',
        per_question_chart_svg(summary),
        f"<figcaption>Points are misaligned shares, bars their 95% Wilson intervals; “n=0” marks a question "
        f"with no kept answers (no rate, not a zero rate).</figcaption></figure>",
        f'<p class="note">Cells: misaligned share [95% CI] (misaligned/kept); {DASH} (0/0) means no answer was '
        "kept, which is not a zero rate.</p>",
        html_table(per_question_table(summary)),
    ]
    note = not_pooled_note(summary)
    if note:
        parts.append(f'<p class="note">{_e(note)}</p>')
    parts.append("<h2>Provenance</h2>")
    parts.append('<dl class="prov">' + "".join(
        f"<dt>{_e(label)}</dt><dd>{_e(value)}</dd>" for label, value in provenance_items(summary)) + "</dl>")
    parts += [html_table(provenance_table(summary)), "</body>", "</html>", ""]
    return "\n".join(parts)
