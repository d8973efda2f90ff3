"""The report as one self-contained HTML file: the blocks of `document.build`, figures inlined as SVG.

No scripts, stylesheets, fonts or images are linked, so the file can be mailed, archived or opened offline
and shows the same thing years later. All text that comes from the summary (condition names, question ids,
warnings, paths, model answers, the config) passes through `html.escape`, because it comes from user
configs and from models.
"""

from __future__ import annotations

import html
from typing import Any

from emlab.report.document import Answer, Figure, Heading, Items, Para, Pre, Warnings, build
from emlab.report.tables import DASH, Table

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
h3 { font-size: 1.05rem; margin-top: 1.5rem; } h4 { font-size: .95rem; margin: 1rem 0 .3rem; }
pre.config { background: #f7f7f7; border: 1px solid #ddd; padding: .6rem; overflow-x: auto; font-size: .85rem; }
.answer { margin: .6rem 0 1rem; } .answer p { margin: .2rem 0; } .scores { color: #555; font-size: .9rem; }
.answer blockquote { margin: .3rem 0; padding: .4rem .8rem; border-left: 4px solid #bbb; background: #fafafa;
                     white-space: pre-wrap; overflow-wrap: anywhere; font-size: .9rem; }
.cut { display: block; margin-top: .4rem; font-weight: bold; color: #922b21; }
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


def _block(b: Any) -> str:
    if isinstance(b, Heading):
        return f"<h{b.level}>{_e(b.text)}</h{b.level}>"
    if isinstance(b, Para):
        return f'<p class="note">{_e(b.text)}</p>'
    if isinstance(b, Warnings):
        items = "".join(f"<li>{_e(w)}</li>" for w in b.items)
        return f'<div class="warnings" role="alert"><strong>Warnings</strong><ul>{items}</ul></div>'
    if isinstance(b, Items):
        return '<dl class="prov">' + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in b.items) + "</dl>"
    if isinstance(b, Table):
        return html_table(b)
    if isinstance(b, Figure):
        return (f'<figure role="img" aria-label="{_e(b.label)}">\n{b.svg()}'
                f"<figcaption>{_e(b.caption)}</figcaption></figure>")
    if isinstance(b, Pre):
        return f'<pre class="config">{_e(b.text)}</pre>'
    if isinstance(b, Answer):
        cut = f'<span class="cut">… [cut: {b.cut} more characters]</span>' if b.cut else ""
        return (f'<div class="answer"><p><strong>{_e(b.title)}</strong></p>'
                f'<p class="scores">Scores: {_e(b.scores)}</p><blockquote>{_e(b.text)}{cut}</blockquote></div>')
    raise TypeError(f"unknown report block {type(b).__name__}")


def render_html(summary: dict, samples: list[dict] | None = None) -> str:
    """The whole report as a single self-contained HTML document with its figures inlined as SVG."""
    title = _e(summary.get("title") or "untitled")
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>emlab report: {title}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
    ]
    parts += [_block(b) for b in build(summary, samples)]
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)
