"""The report as Markdown: each block of `document.build` rendered for a terminal, an editor or a repository.

All text from the summary is backslash-escaped so it shows literally; model answers are escaped line by line
inside a block quote (they may hold HTML, Markdown or code fences), and the config sits in a code fence longer
than any run of backticks in it. Figures are only in report.html; Markdown says what they show.
"""

from __future__ import annotations

import re
from typing import Any

from emlab.report.document import Answer, Figure, Heading, Items, Para, Pre, Warnings, build
from emlab.report.tables import Table

_MD_SPECIAL = re.compile(r"([\\`*|#~]|<(?=[A-Za-z/!?])|&(?=[#A-Za-z]))")
_MD_LINK = re.compile(r"(\])(?=[(\[:])")
_MD_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
_MD_ORDERED = re.compile(r"^(\s*\d+)([.)])")


def md_escape(text: Any, line_start: bool = True) -> str:
    """Backslash-escape Markdown/HTML syntax in user text so it shows literally (intraword `_` left alone).

    `<` and `&` are escaped where they could open a tag, an autolink or an entity, and `>` at the start (a
    quote), so rule text such as `aligned < 30 among coherent > 50` stays readable in the raw file. A leading
    `-`, `+`, `=` or `>` is escaped only when the text starts a line (`line_start`), not in a table cell.
    """
    s = " ".join(str(text).splitlines())
    s = _MD_SPECIAL.sub(r"\\\1", s)
    s = _MD_LINK.sub(r"\\\1", s)
    s = _MD_UNDERSCORE.sub(r"\\_", s)
    return "\\" + s if line_start and s[:1] in ("-", "+", "=", ">") else s


def md_text(text: Any) -> str:
    """`md_escape` for text that starts a line or a list item, where `1.` would also start an ordered list."""
    return _MD_ORDERED.sub(r"\1\\\2", md_escape(text))


def md_table(table: Table) -> str:
    """A GitHub-flavoured Markdown table with escaped cells."""
    def row(cells: list[str], bold: bool = False) -> str:
        esc = [md_escape(c, line_start=False) for c in cells]
        return "| " + " | ".join(f"**{e}**" if bold and e else e for e in esc) + " |"

    lines = [row(table.headers), "|" + "|".join("---" for _ in table.headers) + "|"]
    lines += [row(r, i in table.emphasis) for i, r in enumerate(table.rows)]
    return "\n".join(lines)


def md_quote(text: str) -> list[str]:
    """Model text as block-quote lines: every line escaped, line breaks kept (two trailing spaces)."""
    lines = text.splitlines() or [""]
    out = []
    for i, line in enumerate(lines):
        esc = md_text(line.lstrip())
        if not esc:
            out.append(">")
            continue
        nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
        out.append(f"> {esc}" + ("  " if nxt else ""))
    return out


def md_fence(text: str, lang: str = "") -> list[str]:
    """Text verbatim in a code fence longer than any backtick run in it."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + lang, text.rstrip("\n"), fence]


def _block(b: Any) -> list[str]:
    if isinstance(b, Heading):
        return ["#" * b.level + " " + md_escape(b.text)]
    if isinstance(b, Para):
        return [md_text(b.text)]
    if isinstance(b, Warnings):
        return ["> **Warnings**", ">"] + [f"> - {md_text(w)}" for w in b.items]
    if isinstance(b, Items):
        return [f"- **{md_escape(k)}**: {md_escape(v)}" for k, v in b.items]
    if isinstance(b, Table):
        return [md_table(b)]
    if isinstance(b, Figure):
        return [f"*Figure in report.html: {md_escape(b.label)}. {md_escape(b.caption)}*"]
    if isinstance(b, Pre):
        return md_fence(b.text, b.lang)
    if isinstance(b, Answer):
        out = [f"**{md_escape(b.title)}**  ", f"Scores: {md_escape(b.scores)}", ""]
        out += md_quote(b.text) if b.text.strip() else ["> *(empty answer)*"]
        return out + ([">", f"> **… [cut: {b.cut} more characters]**"] if b.cut else [])
    raise TypeError(f"unknown report block {type(b).__name__}")


def render_markdown(summary: dict, samples: list[dict] | None = None) -> str:
    """The whole report as Markdown: warnings, rules, metrics, groups, comparisons, answers, provenance."""
    out: list[str] = []
    for b in build(summary, samples):
        out += _block(b) + [""]
    return "\n".join(out)
