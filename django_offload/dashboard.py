"""
The metrics dashboard of the admin: a date-range filter, charts over time,
a table per prompt version, model variant and backend, and CSV export.
"""

from __future__ import annotations

import csv
from typing import Any

from django.contrib.admin import AdminSite
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _

from django_offload import charts, metrics


def percent(value: float | None) -> str:
    """
    Format a rate in [0, 1] as a percentage, or a dash for no data.
    """
    return "-" if value is None else f"{value * 100:.1f}%"


def number(value: float | None, digits: int = 0) -> str:
    """
    Format a figure with ``digits`` decimals, or a dash for no data.
    """
    return "-" if value is None else f"{value:,.{digits}f}"


def _evaluator_cells(group: dict[str, Any]) -> list[dict[str, str]]:
    cells = []
    for name, figures in group["evaluators"].items():
        if figures["pass_rate"] is not None:
            shown = f"{percent(figures['pass_rate'])} passed"
        elif figures["mean"] is not None:
            shown = f"mean {number(figures['mean'], 3)}"
        else:
            shown = "not run"
        cells.append({"name": name, "shown": shown})
    return cells


def _table_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for group in report["groups"]:
        reasons = [
            f"{reason}: {count}" for reason, count in group["fallback_reasons"].items()
        ]
        threads = [f"{threads}: {count}" for threads, count in group["threads"].items()]
        rows.append(
            {
                **group,
                "success": percent(group["success_rate"]),
                "failure": percent(group["failure_rate"]),
                "fallback": percent(group["fallback_rate"]),
                "reasons": reasons,
                "latency": f"{number(group['latency_ms']['p50'])} / "
                f"{number(group['latency_ms']['p95'])}",
                "ttft": f"{number(group['ttft_ms']['p50'])} / "
                f"{number(group['ttft_ms']['p95'])}",
                "tps": number(group["decode_tps_median"], 1),
                "thread_mix": threads,
                "evaluator_cells": _evaluator_cells(group),
            }
        )
    return rows


def _csv_response(report: dict[str, Any]) -> HttpResponse:
    name = f"offload-metrics-{report['start']}-{report['end']}.csv"
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    writer = csv.writer(response)
    writer.writerow(metrics.CSV_COLUMNS)
    writer.writerows(metrics.csv_rows(report))
    writer.writerow([])
    writer.writerow(["hidden_groups", report["hidden_groups"]])
    writer.writerow(["min_group_devices", report["min_group_devices"]])
    return response


def render_dashboard(request: HttpRequest, site: AdminSite) -> HttpResponse:
    """
    Render the dashboard, or its CSV export when ``format=csv``.
    """
    error = None
    try:
        start, end = metrics.parse_range(
            request.GET.get("start"), request.GET.get("end")
        )
    except ValueError as exc:
        error = str(exc)
        start, end = metrics.parse_range(None, None)
    report = metrics.compute_metrics(start, end)
    if request.GET.get("format") == "csv" and error is None:
        return _csv_response(report)

    daily = report["daily"]
    context = {
        **site.each_context(request),
        "title": _("Offload metrics"),
        "report": report,
        "rows": _table_rows(report),
        "error": error,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "total_tasks": sum(group["tasks"] for group in report["groups"]),
        "outcome_chart": charts.stacked_bars(
            daily["days"], daily["outcomes"], _("Tasks per day by outcome")
        ),
        "latency_chart": charts.lines(
            daily["days"],
            daily["latency_p50"],
            _("Median latency per day by prompt version"),
            "ms",
        ),
        "csv_query": f"start={start.isoformat()}&end={end.isoformat()}&format=csv",
    }
    return TemplateResponse(request, "admin/django_offload/dashboard.html", context)
