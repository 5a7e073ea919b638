"""Spend charts as inline SVG: pure functions from rows to markup, no library, no script.

Each chart has a ``<title>`` (screen readers announce it) and each bar its own
``<title>`` and a text label, so the numbers are there without hovering. A
chart with nothing spent says so instead of drawing nothing.
"""

from __future__ import annotations

from html import escape

#: what an empty chart says
NOTHING = "nothing spent yet"

_WIDTH = 540
_LABEL = 150  # the label column of a bar chart
_ROW = 24


def usd(amount: float) -> str:
    """An amount as the report writes it: cents, or four decimals below a cent."""
    return f"${amount:.2f}" if amount >= 0.01 or amount == 0 else f"${amount:.4f}"


def _open(ident: str, title: str, height: int) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{_WIDTH}" height="{height}" '
        f'viewBox="0 0 {_WIDTH} {height}" aria-labelledby="{escape(ident)}">'
        f'<title id="{escape(ident)}">{escape(title)}</title>'
    )


def bars(ident: str, title: str, rows: list[tuple[str, float]]) -> str:
    """Horizontal bars, one per row (label, USD), each with its label and amount written out."""
    height = _ROW * len(rows) + (_ROW + 8 if not any(v > 0 for _, v in rows) else 8)
    parts = [_open(ident, title, height)]
    top = max((v for _, v in rows), default=0.0)
    span = _WIDTH - _LABEL - 90
    for n, (label, amount) in enumerate(rows):
        y = 4 + n * _ROW
        width = round(span * amount / top, 1) if top > 0 else 0
        shown = label if len(label) <= 24 else label[:23] + "…"
        parts.append(
            f'<g class="bar"><title>{escape(label)}: {usd(amount)}</title>'
            f'<text x="{_LABEL - 8}" y="{y + 15}" text-anchor="end">{escape(shown)}</text>'
            f'<rect x="{_LABEL}" y="{y + 3}" width="{width}" height="{_ROW - 6}" rx="2"></rect>'
            f'<text x="{_LABEL + width + 6}" y="{y + 15}" class="amount">{usd(amount)}</text></g>'
        )
    if not any(v > 0 for _, v in rows):
        parts.append(f'<text x="{_LABEL}" y="{height - 10}" class="empty">{NOTHING}</text>')
    parts.append("</svg>")
    return "".join(parts)


def columns(ident: str, title: str, rows: list[tuple[str, float]]) -> str:
    """Vertical bars over time, one per row (day, USD), oldest first, with the first and last day and the peak labelled."""
    height = 180
    parts = [_open(ident, title, height)]
    if not rows:
        parts.append(f'<text x="{_WIDTH // 2}" y="{height // 2}" text-anchor="middle" class="empty">{NOTHING}</text></svg>')
        return "".join(parts)
    top = max(v for _, v in rows)
    base, room, left = height - 28, height - 56, 60
    step = (_WIDTH - left - 10) / len(rows)
    width = max(1.0, min(36.0, step - 2))
    parts.append(f'<text x="{left - 6}" y="{base - room + 4}" text-anchor="end" class="amount">{usd(top)}</text>')
    parts.append(f'<line x1="{left}" y1="{base}" x2="{_WIDTH - 10}" y2="{base}" class="axis"></line>')
    for n, (day, amount) in enumerate(rows):
        h = round(room * amount / top, 1) if top > 0 else 0
        x = round(left + n * step + (step - width) / 2, 1)
        parts.append(
            f'<g class="bar"><title>{escape(day)}: {usd(amount)}</title>'
            f'<rect x="{x}" y="{round(base - h, 1)}" width="{round(width, 1)}" height="{h}"></rect></g>'
        )
    parts.append(f'<text x="{left}" y="{height - 8}" class="day">{escape(rows[0][0])}</text>')
    if len(rows) > 1:
        parts.append(f'<text x="{_WIDTH - 10}" y="{height - 8}" text-anchor="end" class="day">{escape(rows[-1][0])}</text>')
    parts.append("</svg>")
    return "".join(parts)
