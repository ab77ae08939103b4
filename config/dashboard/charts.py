"""The dashboard's own chart (ingestion per minute); the rate trend reuses reflection's charts."""
from __future__ import annotations

from datetime import datetime

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT, PAD = 640, 160, 36


def per_minute_bars_svg(points: list[tuple[datetime, int]]) -> SafeString:
    """Bars of logs stored per minute, oldest left, scaled to the busiest minute."""
    busiest = max((n for _, n in points), default=0)
    if not busiest:
        return mark_safe('<p class="help">No logs stored in the last hour.</p>')
    slot = (WIDTH - 2 * PAD) / len(points)
    inner = HEIGHT - 2 * PAD
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        'role="img" aria-label="Logs stored per minute" class="trend-chart">',
        f'<line x1="{PAD}" y1="{PAD + inner}" x2="{WIDTH - PAD}" y2="{PAD + inner}" stroke="#ccc"/>',
        f'<text x="2" y="{PAD + 4}" font-size="11">{busiest:,}</text>',
        f'<text x="2" y="{PAD + inner + 4}" font-size="11">0</text>',
    ]
    for i, (minute, n) in enumerate(points):
        height = inner * n / busiest
        tip = escape(f"{minute:%H:%M} UTC: {n:,} logs")
        parts.append(f'<rect x="{PAD + i * slot + slot * 0.1:.1f}" y="{PAD + inner - height:.1f}" '
                     f'width="{slot * 0.8:.1f}" height="{height:.1f}" fill="#2a6ebb"><title>{tip}</title></rect>')
    parts += [
        f'<text x="{PAD}" y="{HEIGHT - 8}" font-size="11">{points[0][0]:%H:%M}</text>',
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" font-size="11" text-anchor="end">{points[-1][0]:%H:%M} UTC</text>',
        "</svg>",
    ]
    return mark_safe("".join(parts))
