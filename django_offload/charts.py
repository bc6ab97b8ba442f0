"""
Inline SVG charts rendered on the server for the admin dashboard.

No JavaScript and no external assets: each function returns one ``<svg>``
element as a safe string, with axes, tick labels, a legend and a ``<title>``
for screen readers. Every text drawn comes from ``escape``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH = 760
HEIGHT = 300
LEFT, RIGHT, TOP, BOTTOM = 64, 20, 40, 52
OUTCOME_COLORS = {
    "succeeded": "#2e7d32",
    "fell_back": "#f9a825",
    "failed": "#c62828",
    "in_progress": "#90a4ae",
}
OUTCOME_LABELS = {
    "succeeded": "succeeded",
    "fell_back": "fell back",
    "failed": "failed or expired",
    "in_progress": "in progress",
}
LINE_COLORS = ("#1565c0", "#6a1b9a", "#00838f", "#ef6c00", "#4e342e", "#ad1457")


def nice_ceiling(value: float, ticks: int = 4) -> tuple[float, float]:
    """
    Return (top, step): a round axis maximum at or above ``value`` and the
    tick step (1, 2, 2.5 or 5 times a power of ten) that divides it.
    """
    if value <= 0:
        return 1.0, 0.25
    raw = value / ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        step = factor * power
        if step * ticks >= value:
            return step * ticks, step
    return 10 * power * ticks, 10 * power  # unreachable: factor 10 always fits


def _number(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:g}"


def _day_label(day: str) -> str:
    return dt.date.fromisoformat(day).strftime("%b %d").replace(" 0", " ")


def _frame(title: str, summary: str) -> list[str]:
    return [
        f'<svg class="offload-chart" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
        f'aria-label="{escape(summary)}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{LEFT}" y="18" class="offload-chart-title" font-size="15" '
        f'font-weight="bold" fill="#333">{escape(title)}</text>',
    ]


def _y_axis(top: float, step: float, unit: str) -> list[str]:
    parts = []
    plot_height = HEIGHT - TOP - BOTTOM
    count = round(top / step)
    for i in range(count + 1):
        value = step * i
        y = HEIGHT - BOTTOM - plot_height * value / top
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{"#999" if i == 0 else "#e3e3e3"}" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" '
            f'font-size="12" fill="#555">{escape(_number(value))}</text>'
        )
    parts.append(
        f'<text x="16" y="{TOP + plot_height / 2:.1f}" font-size="12" fill="#555" '
        f'text-anchor="middle" transform="rotate(-90 16 {TOP + plot_height / 2:.1f})">'
        f"{escape(unit)}</text>"
    )
    return parts


def _x_axis(days: Sequence[str], centre: Callable[[int], float]) -> list[str]:
    every = max(1, math.ceil(len(days) / 10))
    parts = []
    for i, day in enumerate(days):
        if i % every:
            continue
        x = centre(i)
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 18}" text-anchor="middle" '
            f'font-size="12" fill="#555">{escape(_day_label(day))}</text>'
        )
    return parts


def _legend(items: Sequence[tuple[str, str]], line: bool = False) -> list[str]:
    parts = []
    x = LEFT
    y = HEIGHT - 10
    for label, color in items:
        if line:
            parts.append(
                f'<line x1="{x}" x2="{x + 16}" y1="{y - 4}" y2="{y - 4}" '
                f'stroke="{color}" stroke-width="2.5"/>'
            )
        else:
            parts.append(
                f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{color}"/>'
            )
        parts.append(
            f'<text x="{x + 20}" y="{y}" font-size="13" fill="#333">'
            f"{escape(label)}</text>"
        )
        x += 36 + 7.5 * len(label)
    return parts


def stacked_bars(
    days: Sequence[str], outcomes: dict[str, Sequence[int]], title: str
) -> SafeString:
    """
    Render daily task counts stacked by outcome (the keys of
    ``OUTCOME_COLORS``, bottom to top).
    """
    totals = [sum(outcomes[name][i] for name in outcomes) for i in range(len(days))]
    top, step = nice_ceiling(max(totals, default=0))
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    slot = plot_width / max(len(days), 1)
    bar = max(2.0, slot * 0.7)

    def centre(i: int) -> float:
        return LEFT + slot * (i + 0.5)

    summary = f"{title}: {sum(totals)} tasks over {len(days)} days"
    parts = _frame(title, summary) + _y_axis(top, step, "tasks per day")
    for i, day in enumerate(days):
        base = HEIGHT - BOTTOM
        for name, color in OUTCOME_COLORS.items():
            count = outcomes.get(name, [0] * len(days))[i]
            if not count:
                continue
            height = plot_height * count / top
            base -= height
            parts.append(
                f'<rect x="{centre(i) - bar / 2:.1f}" y="{base:.1f}" '
                f'width="{bar:.1f}" height="{height:.1f}" fill="{color}">'
                f"<title>{escape(day)}: {count} {escape(OUTCOME_LABELS[name])}"
                "</title></rect>"
            )
    parts += _x_axis(days, centre)
    parts += _legend([(OUTCOME_LABELS[n], c) for n, c in OUTCOME_COLORS.items()])
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text above is escaped


def lines(
    days: Sequence[str],
    series: dict[str, Sequence[float | None]],
    title: str,
    unit: str,
) -> SafeString:
    """
    Render one line per series over the days; None leaves a gap, and every
    point gets a marker so single days stay visible.
    """
    values = [v for points in series.values() for v in points if v is not None]
    top, step = nice_ceiling(max(values, default=0))
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    slot = plot_width / max(len(days), 1)

    def centre(i: int) -> float:
        return LEFT + slot * (i + 0.5)

    def y_of(value: float) -> float:
        return HEIGHT - BOTTOM - plot_height * value / top

    summary = f"{title}: {len(series)} series over {len(days)} days"
    parts = _frame(title, summary) + _y_axis(top, step, unit)
    legend = []
    for n, (label, points) in enumerate(series.items()):
        color = LINE_COLORS[n % len(LINE_COLORS)]
        legend.append((label, color))
        segment: list[str] = []
        for i, value in enumerate([*points, None]):
            if value is None:
                if len(segment) > 1:
                    parts.append(
                        f'<polyline points="{" ".join(segment)}" fill="none" '
                        f'stroke="{color}" stroke-width="2"/>'
                    )
                segment = []
                continue
            segment.append(f"{centre(i):.1f},{y_of(value):.1f}")
            parts.append(
                f'<circle cx="{centre(i):.1f}" cy="{y_of(value):.1f}" r="3" '
                f'fill="{color}"><title>{escape(label)} {escape(days[i])}: '
                f"{escape(_number(round(value, 1)))} {escape(unit)}</title></circle>"
            )
    parts += _x_axis(days, centre)
    parts += _legend(legend, line=True)
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text above is escaped
