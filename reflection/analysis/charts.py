"""Server-side SVG charts for admin pages: no JavaScript, no CDN."""
from __future__ import annotations

from datetime import date, datetime

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from reflection.analysis.selectors import DayOutcome

WIDTH, HEIGHT, PAD = 640, 220, 36
INNER_W, INNER_H = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
# Run-count bars fill at most this share of the plot, under the rate line.
BAR_SHARE = 0.3


def _y(rate: float) -> float:
    return PAD + (1 - rate) * INNER_H


def _frame(label: str) -> list[str]:
    """The opening tag and the 0 / 50 % / 100 % lines. The 50 % warning level is a dotted grey
    line, not red: a healthy case above it must not look alarming."""
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{escape(label)}" class="trend-chart">',
    ]
    for level in (0, 0.5, 1):
        style = 'stroke="#888" stroke-dasharray="2,3"' if level == 0.5 else 'stroke="#ccc"'
        parts.append(f'<line x1="{PAD}" y1="{_y(level):.1f}" x2="{WIDTH - PAD}" y2="{_y(level):.1f}" {style} stroke-width="1"/>')
        parts.append(f'<text x="2" y="{_y(level) + 4:.1f}" font-size="11">{int(level * 100)}%</text>')
    return parts


def _closing(first: date | datetime, last: date | datetime) -> list[str]:
    # Moments of one day are told apart by their time (runs of today: "2026-12-06" twice said nothing).
    same_day = isinstance(first, datetime) and isinstance(last, datetime) and first.date() == last.date()
    shape = "%Y-%m-%d %H:%M" if same_day else "%Y-%m-%d"
    return [
        f'<text x="{PAD}" y="{HEIGHT - 8}" font-size="11">{first:{shape}}</text>',
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" font-size="11" text-anchor="end">{last:{shape}}</text>',
        "</svg>",
    ]


def success_rate_trend_svg(points: list[tuple[datetime, float | None, float | None]]) -> SafeString:
    """Line chart of success rate (solid) and weighted rate (dashed), 0..100 %, oldest left."""
    shown = [(moment, rate, weighted) for moment, rate, weighted in points if rate is not None]
    if not shown:
        return mark_safe('<p class="help">No analysis with runs yet.</p>')
    step = INNER_W / max(1, len(shown) - 1)

    def xy(index: int, rate: float) -> str:
        return f"{PAD + index * step:.1f},{_y(rate):.1f}"

    plain = " ".join(xy(i, rate) for i, (_, rate, _) in enumerate(shown))
    weighted = " ".join(xy(i, w) for i, (_, _, w) in enumerate(shown) if w is not None)
    parts = _frame("Success rate trend")
    parts.append(f'<polyline fill="none" stroke="#2a6ebb" stroke-width="2" points="{plain}"/>')
    if weighted:
        parts.append(f'<polyline fill="none" stroke="#e08a00" stroke-width="2" stroke-dasharray="5,3" points="{weighted}"/>')
    for i, (moment, rate, _) in enumerate(shown):
        x, y = xy(i, rate).split(",")
        parts.append(f'<circle cx="{x}" cy="{y}" r="3" fill="#2a6ebb"><title>{escape(f"{moment:%Y-%m-%d %H:%M}: {rate:.1%}")}</title></circle>')
    return mark_safe("".join(parts + _closing(shown[0][0], shown[-1][0])))


def daily_outcomes_svg(days: list[DayOutcome]) -> SafeString:
    """Runs per day (grey bars, scaled to the busiest day) and that day's success rate (points
    joined by a line; days without runs leave a gap in it), oldest left."""
    busiest = max((day.runs for day in days), default=0)
    if not busiest:
        return mark_safe('<p class="help">No runs in these days.</p>')
    slot = INNER_W / len(days)
    parts = _frame("Runs and success rate per day")
    segments: list[list[str]] = [[]]
    for i, day in enumerate(days):
        x = PAD + (i + 0.5) * slot
        rate = day.success_rate
        if rate is None:
            segments.append([])
            continue
        height = BAR_SHARE * INNER_H * day.runs / busiest
        tip = escape(f"{day.day:%Y-%m-%d}: {rate:.1%} of {day.runs} runs")
        parts.append(f'<rect x="{x - slot * 0.35:.1f}" y="{PAD + INNER_H - height:.1f}" width="{slot * 0.7:.1f}" '
                     f'height="{height:.1f}" fill="#ddd"><title>{tip}</title></rect>')
        segments[-1].append(f"{x:.1f},{_y(rate):.1f}")
        parts.append(f'<circle cx="{x:.1f}" cy="{_y(rate):.1f}" r="3" fill="#2a6ebb"><title>{tip}</title></circle>')
    for segment in segments:
        if len(segment) > 1:
            parts.append(f'<polyline fill="none" stroke="#2a6ebb" stroke-width="2" points="{" ".join(segment)}"/>')
    return mark_safe("".join(parts + _closing(days[0].day, days[-1].day)))
