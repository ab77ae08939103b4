"""Server-side SVG charts any app may draw: no JavaScript, no CDN. Text is escaped here."""
from __future__ import annotations

import math

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

BAR_WIDTH = 720
BAR_HEIGHT = 22
LABEL_WIDTH = 220
VALUE_WIDTH = 90
LABEL_CHARS = 32


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() or abs(value) >= 1000 else f"{value:,.2f}"


def horizontal_bars_svg(bars: list[tuple[str, float | None]], *, label: str) -> SafeString:
    """One horizontal bar per (label, value), scaled to the largest magnitude, in the given order.

    Horizontal, so long labels (region names, titles) stay readable; a missing or non-finite
    value draws no bar and says so; negative values are drawn in a different colour from zero."""
    finite = [abs(v) for _, v in bars if v is not None and math.isfinite(v)]
    largest = max(finite, default=0.0)
    plot = BAR_WIDTH - LABEL_WIDTH - VALUE_WIDTH
    height = BAR_HEIGHT * len(bars) + 8
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {BAR_WIDTH} {height}" width="{BAR_WIDTH}" '
        f'height="{height}" role="img" aria-label="{escape(label)}" class="bar-chart">',
    ]
    for i, (name, value) in enumerate(bars):
        y = 4 + i * BAR_HEIGHT
        short = name if len(name) <= LABEL_CHARS else name[: LABEL_CHARS - 1] + "…"
        parts.append(f'<text x="{LABEL_WIDTH - 6}" y="{y + 15}" font-size="12" text-anchor="end">'
                     f'<title>{escape(name)}</title>{escape(short)}</text>')
        if value is None or not math.isfinite(value):
            parts.append(f'<text x="{LABEL_WIDTH + 4}" y="{y + 15}" font-size="12" fill="#666">no value</text>')
            continue
        width = plot * abs(value) / largest if largest else 0.0
        colour = "#2a6ebb" if value >= 0 else "#8a6d3b"
        parts.append(f'<rect x="{LABEL_WIDTH}" y="{y + 3}" width="{width:.1f}" height="{BAR_HEIGHT - 6}" '
                     f'fill="{colour}"><title>{escape(f"{name}: {_number(value)}")}</title></rect>')
        parts.append(f'<text x="{LABEL_WIDTH + width + 4:.1f}" y="{y + 15}" font-size="12">{_number(value)}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))
