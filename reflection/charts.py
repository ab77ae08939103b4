"""Server-side SVG charts for admin pages: no JavaScript, no CDN."""
from __future__ import annotations

from datetime import datetime

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT, PAD = 640, 220, 36


def success_rate_trend_svg(points: list[tuple[datetime, float | None, float | None]]) -> SafeString:
    """Line chart of success rate (solid) and weighted rate (dashed), 0..100 %, oldest left."""
    points = [point for point in points if point[1] is not None]
    if not points:
        return mark_safe('<p class="help">No analysis with runs yet.</p>')
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    step = inner_w / max(1, len(points) - 1)

    def xy(index: int, rate: float) -> str:
        return f"{PAD + index * step:.1f},{PAD + (1 - rate) * inner_h:.1f}"

    plain = " ".join(xy(i, rate) for i, (_, rate, _) in enumerate(points))
    weighted = " ".join(xy(i, w) for i, (_, _, w) in enumerate(points) if w is not None)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        'role="img" aria-label="Success rate trend" class="trend-chart">',
    ]
    for level in (0, 0.5, 1):
        y = PAD + (1 - level) * inner_h
        colour = "#c00" if level == 0.5 else "#ccc"
        parts.append(f'<line x1="{PAD}" y1="{y:.1f}" x2="{WIDTH - PAD}" y2="{y:.1f}" stroke="{colour}" stroke-width="1"/>')
        parts.append(f'<text x="2" y="{y + 4:.1f}" font-size="11">{int(level * 100)}%</text>')
    parts.append(f'<polyline fill="none" stroke="#2a6ebb" stroke-width="2" points="{plain}"/>')
    if weighted:
        parts.append(f'<polyline fill="none" stroke="#e08a00" stroke-width="2" stroke-dasharray="5,3" points="{weighted}"/>')
    for i, (moment, rate, _) in enumerate(points):
        x, y = xy(i, rate).split(",")
        parts.append(f'<circle cx="{x}" cy="{y}" r="3" fill="#2a6ebb"><title>{escape(f"{moment:%Y-%m-%d %H:%M}: {rate:.1%}")}</title></circle>')
    first, last = points[0][0], points[-1][0]
    parts.append(f'<text x="{PAD}" y="{HEIGHT - 8}" font-size="11">{first:%Y-%m-%d}</text>')
    parts.append(f'<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" font-size="11" text-anchor="end">{last:%Y-%m-%d}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))
