"""Report documents: blocks (headings, paragraphs, tables, figures) rendered twice, to
Markdown and to self-contained HTML (figures embedded as data URIs), so both always say the
same thing. Every table regbench writes goes through `markdown_table` (reports) or
`text_table` (the terminal).
"""

from __future__ import annotations

import base64
import html
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

FIGURE_DPI = 110
FIGURES_DIR = "figures"


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    text: str  # `code` spans allowed


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Contents:
    """A table of contents: links to every heading of `levels` in the document."""
    levels: tuple[int, ...] = (2, 3)


@dataclass(frozen=True)
class Figure:
    path: str  # relative to the report folder
    caption: str
    png: bytes = field(repr=False)


def anchors(blocks: list) -> dict[int, str]:
    """Block index -> anchor of each heading, as GitHub makes them (lower case, punctuation
    dropped, spaces to hyphens, repeats numbered), so one link works in both renderings."""
    out, seen = {}, {}
    for i, b in enumerate(blocks):
        if isinstance(b, Heading):
            slug = re.sub(r"[^\w\- ]", "", b.text.lower()).replace(" ", "-")
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            out[i] = f"{slug}-{count}" if count else slug
    return out


def _contents(blocks: list, levels: tuple[int, ...]) -> list[tuple[int, str, str]]:
    """(depth, text, anchor) of each heading the table of contents lists."""
    top = min(levels)
    return [(blocks[i].level - top, blocks[i].text, slug)
            for i, slug in anchors(blocks).items() if blocks[i].level in levels]


def render_markdown(blocks: list) -> str:
    out = []
    for b in blocks:
        if isinstance(b, Contents):
            out.append("\n".join(f"{'  ' * depth}- [{text}](#{slug})"
                                 for depth, text, slug in _contents(blocks, b.levels)))
        elif isinstance(b, Heading):
            out.append("#" * b.level + " " + b.text)
        elif isinstance(b, Para):
            out.append(b.text)
        elif isinstance(b, Bullets):
            out.append("\n".join(f"- {item}" for item in b.items))
        elif isinstance(b, Code):
            out.append(f"```\n{b.text}\n```")
        elif isinstance(b, Table):
            out.append(markdown_table(b.headers, b.rows))
        elif isinstance(b, Figure):
            out.append(f"![{b.caption}]({b.path})\n\n*{b.caption}*")
    return "\n\n".join(out) + "\n"


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 75em;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.45em; text-align: left; }
td:first-child { overflow-wrap: anywhere; min-width: 6em; }
th { background: #f3f3f3; }
td.num { white-space: nowrap; font-variant-numeric: tabular-nums; }
div.scroll { overflow-x: auto; }
tr:nth-child(even) td { background: #fafafa; }
code, pre { background: #f5f5f5; font-family: ui-monospace, monospace; font-size: 0.9em; }
pre { padding: 0.6em; overflow-x: auto; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; height: auto; }
figcaption { font-style: italic; color: #555; }
nav.toc ul { list-style: none; padding-left: 0; columns: 2; }
nav.toc li.depth1 { padding-left: 1.5em; }
nav.toc li.depth2 { padding-left: 3em; }
"""


def render_html(blocks: list, title: str) -> str:
    body = []
    ids = anchors(blocks)
    for i, b in enumerate(blocks):
        if isinstance(b, Contents):
            body.append('<nav class="toc"><ul>' + "".join(
                f'<li class="depth{depth}"><a href="#{slug}">{_inline(text)}</a></li>'
                for depth, text, slug in _contents(blocks, b.levels)) + "</ul></nav>")
        elif isinstance(b, Heading):
            body.append(f'<h{b.level} id="{ids[i]}">{_inline(b.text)}</h{b.level}>')
        elif isinstance(b, Para):
            body.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Bullets):
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Code):
            body.append(f"<pre><code>{html.escape(b.text)}</code></pre>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{_inline(h)}</th>" for h in b.headers)
            rows = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in b.rows)
            body.append(f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
                        f"<tbody>{rows}</tbody></table></div>")
        elif isinstance(b, Figure):
            data = base64.b64encode(b.png).decode("ascii")
            body.append(f'<figure><img alt="{html.escape(b.caption)}" '
                        f'src="data:image/png;base64,{data}">'
                        f"<figcaption>{_inline(b.caption)}</figcaption></figure>")
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def _inline(text: str) -> str:
    """The Markdown this module writes, as HTML: `code`, **bold**, *emphasis*, [text](link).
    Code spans are taken verbatim (an error message may hold `*` or `[`)."""
    out = []
    for i, piece in enumerate(re.split(r"`([^`]+)`", text)):
        piece = html.escape(piece, quote=False)
        if i % 2:
            out.append(f"<code>{piece}</code>")
            continue
        piece = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", piece)
        piece = re.sub(r"\*([^*\s][^*]*)\*", r"<em>\1</em>", piece)
        out.append(re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r'<a href="\2">\1</a>', piece))
    return "".join(out)


NUMERIC = re.compile(r"^[-+–\d.,±%\[\] /e]+$")  # table cells kept on one line


def _cell(text: str) -> str:
    numeric = ' class="num"' if NUMERIC.match(text) else ""
    return f"<td{numeric}>{_inline(text)}</td>"


def with_contents(blocks: list) -> list:
    """`blocks` with a table of contents before the first section, unless they have one."""
    if any(isinstance(b, Contents) for b in blocks):
        return blocks
    first = next((i for i, b in enumerate(blocks) if isinstance(b, Heading) and b.level == 2),
                 None)
    if first is None:
        return blocks
    return [*blocks[:first], Para("**Contents**"), Contents(), *blocks[first:]]


def write_document(blocks: list, out_dir: Path, title: str) -> None:
    """README.md beside its figures/*.png, and report.html with the figures inside; both
    with a table of contents."""
    blocks = with_contents(blocks)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = out_dir / FIGURES_DIR
    for b in blocks:
        if isinstance(b, Figure):
            figures.mkdir(exist_ok=True)
            (out_dir / b.path).write_bytes(b.png)
    (out_dir / "README.md").write_text(render_markdown(blocks))
    (out_dir / "report.html").write_text(render_html(blocks, title))


def text_table(headers, rows) -> str:
    """A plain-text table for a terminal: columns padded, a rule under the headers."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip()
                     for row in [headers, ["-" * w for w in widths], *rows])


def markdown_table(headers, rows) -> str:
    """A Markdown table; `|` inside a cell is escaped."""
    cells = [[str(c).replace("|", "\\|") for c in row] for row in (headers, *rows)]
    lines = ["| " + " | ".join(row) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("---" for _ in headers) + "|")
    return "\n".join(lines)


def draw(name: str, caption: str, plot, size=(8, 4.5), ncols: int = 1, nrows: int = 1,
         prefix: str = "") -> Figure:
    """Run `plot(axes)` on a fresh Agg figure and return it as PNG bytes."""
    import seaborn as sns
    from matplotlib.figure import Figure as MplFigure

    with sns.axes_style("whitegrid"):
        fig = MplFigure(figsize=size, layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False)
        plot(fig, axes)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=FIGURE_DPI, metadata={"Software": None})
    path = f"{FIGURES_DIR}/{prefix}{name}.png"
    return Figure(path, caption, buffer.getvalue())


def clear_figures(out_dir: Path) -> None:
    """Old PNGs of a previous report would otherwise linger beside the new ones."""
    figures = out_dir / FIGURES_DIR
    if figures.is_dir():
        for png in figures.glob("*.png"):
            png.unlink()
