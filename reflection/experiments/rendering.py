"""HTML pieces of the experiment pages: the arms with their 95 % intervals, the statistic over
time (server-side SVG, no JavaScript, no CDN), and the verdict shown on suggestions."""
from __future__ import annotations

import math
from collections.abc import Sequence

from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from reflection.experiments.ramp import next_share
from reflection.experiments.readout import experiment_arms, looked_step_counts
from reflection.models import Experiment, ExperimentLook, ExperimentStatus, ExperimentStep

STATUS_COLOURS: dict[str, str] = {
    ExperimentStatus.RUNNING: "#9a6700", ExperimentStatus.AWAITING_REVIEW: "#0969da",
    ExperimentStatus.PROMOTED: "#1a7f37", ExperimentStatus.ROLLED_BACK: "#cf222e",
    ExperimentStatus.INCONCLUSIVE: "#6e7781", ExperimentStatus.SUPERSEDED: "#6e7781",
}


def _pct(value: float | None) -> str:
    return f"{value:.1%}" if isinstance(value, (int, float)) else "—"


def status_badge(experiment: Experiment) -> SafeString:
    return format_html('<strong style="color:{}">{}</strong>{}', STATUS_COLOURS.get(experiment.status, "#000"),
                       experiment.get_status_display(), mark_safe(" ⚑") if experiment.flagged else "")


def arms_html(experiment: Experiment) -> SafeString:
    """One row per arm: version, share of traffic, runs, successes, rate and its 95 % interval."""
    rows = [(arm["arm"].capitalize(), arm["version"], f"{arm['share']:.0%}", f"{arm['runs']:,}", f"{arm['successes']:,}",
             _pct(arm["success_rate"]), f"{_pct(arm['interval'][0])} – {_pct(arm['interval'][1])}" if arm["interval"] else "—")
            for arm in experiment_arms(experiment)]
    table = format_html_join("", "<tr><th>{}</th><td>v{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
    return format_html(
        '<table class="experiment-arms"><tr><th>Arm</th><th>Version</th><th>Traffic</th><th>Runs</th>'
        "<th>Successes</th><th>Success rate</th><th>95 % interval</th></tr>{}</table>", table)


def ramp_html(experiment: Experiment, steps: Sequence[ExperimentStep]) -> SafeString:
    """The ramp: where it stands, what comes next, and every step with its time, who moved the
    share and why, and both arms' runs in it (from the last look)."""
    following = next_share(ramp=experiment.ramp, share=experiment.candidate_share)
    if experiment.status != ExperimentStatus.RUNNING:
        state = "ended with the experiment"
    elif experiment.ramp_held:
        state = "held by a reviewer: no automatic step"
    elif following is None:
        state = "at its last step"
    else:
        state = f"next: {following:.0%}, automatically once the ramp rule allows"
    looked = looked_step_counts(experiment)

    def arm(step: ExperimentStep, name: str) -> str:
        counts = looked.get(step.number, {}).get(name)
        return f"{counts['successes']:,}/{counts['runs']:,}" if counts else "—"

    rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", (
        (step.number, f"{step.share:.0%}", f"{step.started_at:%Y-%m-%d %H:%M}", step.started_by, step.reason,
         arm(step, "current"), arm(step, "candidate"))
        for step in steps
    ))
    return format_html(
        "Step {} of the ramp {}, candidate share <strong>{}</strong> ({}).<br>"
        '<table class="experiment-steps"><tr><th>Step</th><th>Share</th><th>Started</th><th>By</th><th>Why</th>'
        "<th>Current: successes/runs</th><th>Candidate: successes/runs</th></tr>{}</table>",
        steps[-1].number if steps else 1, " → ".join(f"{share:.0%}" for share in experiment.ramp) or "—",
        f"{experiment.candidate_share:.0%}", state, rows)


def statistic_html(experiment: Experiment) -> SafeString:
    detail = experiment.detail or {}
    if not detail:
        return mark_safe('<p class="help">Not looked at yet: the next reflection run does.</p>')
    interval = detail.get("interval")
    difference = detail.get("difference")
    return format_html(
        "Difference (candidate − current): <strong>{}</strong>, always-valid 95 % interval {}<br>"
        "Mixture likelihood ratio {} (decides at ≥ {}), always-valid p = {}<br><span class='help'>{}; "
        "no decision before {} runs per arm.</span>",
        f"{difference:+.1%}" if isinstance(difference, (int, float)) else "—",
        f"{interval[0]:+.1%} to {interval[1]:+.1%}" if interval else "—",
        f"{detail.get('likelihood_ratio', 0):.3g}", f"{detail.get('threshold', 0):.0f}",
        f"{detail.get('p_value', 1):.3g}", detail.get("test", ""), detail.get("min_runs_per_arm", "the minimum"),
    )


# 900 px: beside the admin's label column it fits a 1,440 px window with room to spare.
WIDTH, HEIGHT, PAD = 900, 240, 44
INNER_W, INNER_H = WIDTH - 2 * PAD, HEIGHT - 2 * PAD


def statistic_svg(looks: Sequence[ExperimentLook], *, threshold: float) -> SafeString:
    """log10 of the mixture likelihood ratio at each look (blue), oldest left; the red line is the
    threshold 1/alpha above which the experiment decides; dashed lines mark where the ramp moved
    the share."""
    if not looks:
        return mark_safe('<p class="help">No looks yet.</p>')
    values = [math.log10(max(look.likelihood_ratio, 1e-12)) for look in looks]
    top = max(math.log10(threshold) * 1.5, max(values), 1.0)
    bottom = min(min(values), -1.0)

    def y(value: float) -> float:
        return PAD + (top - value) / (top - bottom) * INNER_H

    step = INNER_W / max(1, len(looks) - 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        'role="img" aria-label="Sequential statistic over time" class="experiment-chart">',
    ]
    for level, colour, label in ((0.0, "#ccc", "1"), (math.log10(threshold), "#c00", f"{threshold:.0f} (decide)")):
        parts.append(f'<line x1="{PAD}" y1="{y(level):.1f}" x2="{WIDTH - PAD}" y2="{y(level):.1f}" stroke="{colour}"/>')
        parts.append(f'<text x="2" y="{y(level) + 4:.1f}" font-size="11">{escape(label)}</text>')
    points = []
    for i, (look, value) in enumerate(zip(looks, values, strict=True)):
        x = PAD + i * step
        if i and look.step != looks[i - 1].step:
            # The share moved between these looks: a new ramp step starts here.
            label = escape(f"→ {look.share:.0%}" if look.share is not None else f"step {look.step}")
            parts.append(f'<line x1="{x:.1f}" y1="{PAD}" x2="{x:.1f}" y2="{HEIGHT - PAD}" stroke="#9a6700" '
                         f'stroke-dasharray="4 3" class="ramp-step"/>')
            parts.append(f'<text x="{x + 3:.1f}" y="{PAD - 4}" font-size="11" fill="#9a6700">{label}</text>')
        points.append(f"{x:.1f},{y(value):.1f}")
        tip = escape(f"{look.looked_at:%Y-%m-%d %H:%M}: ratio {look.likelihood_ratio:.3g}, "
                     f"current {look.current_successes}/{look.current_runs}, "
                     f"candidate {look.candidate_successes}/{look.candidate_runs} ({look.outcome})")
        parts.append(f'<circle cx="{x:.1f}" cy="{y(value):.1f}" r="3" fill="#2a6ebb"><title>{tip}</title></circle>')
    if len(points) > 1:
        parts.append(f'<polyline fill="none" stroke="#2a6ebb" stroke-width="2" points="{" ".join(points)}"/>')
    parts.append(f'<text x="{PAD}" y="{HEIGHT - 8}" font-size="11">{looks[0].looked_at:%Y-%m-%d %H:%M}</text>')
    parts.append(f'<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" font-size="11" text-anchor="end">'
                 f'{looks[-1].looked_at:%Y-%m-%d %H:%M}</text></svg>')
    return mark_safe("".join(parts))  # noqa: S308 (numbers and escaped text only)


def verdict_html(experiment: Experiment) -> SafeString:
    """The experiment's verdict as the suggestion pages show it."""
    detail = experiment.detail or {}
    current, candidate = detail.get("current") or {}, detail.get("candidate") or {}
    return format_html(
        '{} <span style="color:#888">v{} {} of {} runs vs v{} {} of {} · p = {}</span> '
        '<a href="/admin/reflection/experiment/{}/change/">experiment #{}</a>',
        status_badge(experiment), experiment.candidate_version, _pct(candidate.get("success_rate")),
        candidate.get("runs", 0), experiment.base_version, _pct(current.get("success_rate")), current.get("runs", 0),
        f"{detail['p_value']:.3g}" if isinstance(detail.get("p_value"), (int, float)) else "—",
        experiment.pk, experiment.pk,
    )
