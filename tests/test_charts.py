import re

import pytest

from django_offload import charts

DAYS = ["2026-11-01", "2026-11-02", "2026-11-03"]


@pytest.mark.parametrize(
    ("value", "top", "step"),
    [(0, 1.0, 0.25), (3, 4, 1), (75, 80, 20), (1234.0, 2000, 500), (0.3, 0.4, 0.1)],
)
def test_nice_ceiling_round_steps(value, top, step):
    got_top, got_step = charts.nice_ceiling(value)
    assert got_top == pytest.approx(top)
    assert got_step == pytest.approx(step)
    assert got_top >= value


def test_stacked_bars_one_rect_per_segment():
    outcomes = {
        "succeeded": [3, 0, 5],
        "fell_back": [1, 0, 0],
        "failed": [0, 0, 2],
        "in_progress": [0, 0, 0],
    }
    svg = charts.stacked_bars(DAYS, outcomes, "Tasks")
    bars = re.findall(r"<rect [^>]*><title>", svg)
    assert len(bars) == 4
    assert "2026-11-03: 2 failed or expired" in svg
    assert svg.startswith("<svg")
    assert svg.endswith("</svg>")
    # Legend squares, one per outcome.
    assert len(re.findall(r'<rect [^>]*width="12"', svg)) == 4


def test_stacked_bars_axis_labels():
    svg = charts.stacked_bars(DAYS, {"succeeded": [10, 20, 30]}, "Tasks")
    assert ">40</text>" in svg
    assert ">tasks per day</text>" in svg
    assert ">Nov 1</text>" in svg


def test_lines_gap_splits_polyline():
    svg = charts.lines(
        DAYS + ["2026-11-04"], {"a v1": [1.0, 2.0, None, 4.0]}, "L", "ms"
    )
    assert svg.count("<polyline") == 1
    assert svg.count("<circle") == 3


def test_lines_escape_series_names():
    svg = charts.lines(DAYS, {"<script>x</script>": [1.0, None, 2.0]}, "L", "ms")
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg


def test_lines_empty_series_render():
    svg = charts.lines(DAYS, {}, "Latency", "ms")
    assert "<polyline" not in svg
    assert "<title>Latency</title>" in svg
