"""The report's pages: a list of blocks (headings, paragraphs, tables, figures) rendered as Markdown,
with figures linked, and as one self-contained HTML file, with figures embedded."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field

import pandas as pd


@dataclass
class Page:
    """Blocks in order: ("h1" | "h2" | "p", text), ("table", DataFrame), ("figure", file name, caption);
    and the PNG bytes of each figure by file name."""

    blocks: list[tuple] = field(default_factory=list)
    figures: dict[str, bytes] = field(default_factory=dict)

    def add(self, *blocks: tuple) -> None:
        self.blocks += blocks

    def figure(self, name: str, drawn, caption: str) -> None:
        self.figures[name] = png(drawn)
        self.blocks.append(("figure", name, caption))


def markdown_table(table: pd.DataFrame) -> str:
    def cell(value) -> str:
        return str(value).replace("|", "\\|")

    cells = [[cell(v) for v in row] for row in table.itertuples(index=False)]
    lines = ["| " + " | ".join(map(cell, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def render(blocks: list[tuple], figures: dict[str, bytes]) -> tuple[str, str]:
    """Markdown (figures linked) and HTML (figures embedded) from one list of blocks."""
    md, body = [], []
    for kind, *content in blocks:
        if kind in ("h1", "h2"):
            md.append(("# " if kind == "h1" else "## ") + content[0])
            body.append(f"<{kind}>{html.escape(content[0])}</{kind}>")
        elif kind == "p":
            md.append(content[0])
            body.append(f"<p>{html.escape(content[0])}</p>")
        elif kind == "table":
            md.append(markdown_table(content[0]))
            body.append(content[0].to_html(index=False, border=0, classes="results"))
        elif kind == "figure":
            name, caption = content
            md.append(f"![{caption}](figures/{name})")
            data = base64.b64encode(figures[name]).decode()
            body.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    style = ("body{font-family:sans-serif;max-width:75em;margin:auto;padding:1em}table{border-collapse:collapse;"
             "margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left}img{max-width:100%}")
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>IMDb RNN comparison</title>'
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
    return "\n\n".join(md) + "\n", page


def png(figure) -> bytes:
    from pipeline.figures import plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()
