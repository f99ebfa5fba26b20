"""Inline SVG bar charts for the HTML report (no script, no network: plain markup)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

from dtf.reporting.text import label

WIDTH = 760
LABEL_W = 280
VALUE_W = 90
ROW_H = 24
BAR_H = 16


def _clip(text: str, chars: int = 40) -> str:
    return text if len(text) <= chars else "…" + text[-(chars - 1) :]


def _svg(rows: int, title: str, body: list[str], extra_h: int = 0) -> str:
    height = rows * ROW_H + 8 + extra_h
    return (
        f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>{''.join(body)}</svg>"
    )


def bar_chart(
    rows: Sequence[tuple[str, float]], title: str, fmt: Callable[[float], str] = str
) -> str:
    """One horizontal bar per ``(label, value)``, longest bar for the largest value."""
    top = max((value for _, value in rows), default=0) or 1
    span = WIDTH - LABEL_W - VALUE_W
    body = []
    for i, (name, value) in enumerate(rows):
        y = 4 + i * ROW_H
        width = max(1.0, span * value / top) if value else 0
        body.append(
            f'<g class="bar"><title>{escape(name)}: {escape(fmt(value))}</title>'
            f'<text x="{LABEL_W - 8}" y="{y + BAR_H - 3}" text-anchor="end">'
            f"{escape(_clip(name))}</text>"
            f'<rect x="{LABEL_W}" y="{y}" width="{width:.1f}" height="{BAR_H}" rx="2"/>'
            f'<text x="{LABEL_W + width + 6:.1f}" y="{y + BAR_H - 3}">{escape(fmt(value))}</text>'
            "</g>"
        )
    return _svg(len(rows), title, body)


def stacked_chart(
    rows: Sequence[tuple[str, dict[str, int]]], order: Sequence[str], title: str
) -> str:
    """One bar per ``(label, counts)``, split by outcome (CSS classes ``o-<outcome>``),
    every bar scaled to the largest total, with a legend underneath."""
    top = max((sum(counts.values()) for _, counts in rows), default=0) or 1
    span = WIDTH - LABEL_W - VALUE_W
    body = []
    for i, (name, counts) in enumerate(rows):
        y = 4 + i * ROW_H
        x = float(LABEL_W)
        parts = [
            f'<text x="{LABEL_W - 8}" y="{y + BAR_H - 3}" text-anchor="end">'
            f"{escape(_clip(name))}</text>"
        ]
        for outcome in order:
            n = counts.get(outcome, 0)
            if not n:
                continue
            width = span * n / top
            parts.append(
                f'<rect class="o-{escape(outcome)}" x="{x:.1f}" y="{y}" width="{width:.1f}" '
                f'height="{BAR_H}"><title>{escape(name)}: {n} {escape(label(outcome))}'
                "</title></rect>"
            )
            x += width
        parts.append(f'<text x="{x + 6:.1f}" y="{y + BAR_H - 3}">{sum(counts.values())}</text>')
        body.append(f'<g class="stack">{"".join(parts)}</g>')
    used = [o for o in order if any(counts.get(o) for _, counts in rows)]
    legend_y = 4 + len(rows) * ROW_H + 6
    x, lines = 0, 1
    for outcome in used:
        step = 28 + 8 * len(label(outcome))
        if x + step > WIDTH:
            x, legend_y, lines = 0, legend_y + ROW_H, lines + 1
        body.append(
            f'<rect class="o-{escape(outcome)}" x="{x}" y="{legend_y}" width="12" height="12"/>'
            f'<text x="{x + 16}" y="{legend_y + 11}">{escape(label(outcome))}</text>'
        )
        x += step
    return _svg(len(rows), title, body, extra_h=lines * ROW_H)
