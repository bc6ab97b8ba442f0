"""
Aggregates of tasks and scores for the admin dashboard and the metrics API.

Tasks are grouped by prompt version, model, variant and backend over a range
of days (inclusive, in the current time zone). A group whose tasks came from
fewer than ``OFFLOAD['MIN_GROUP_DEVICES']`` distinct devices is hidden and
only counted, so a small group cannot reveal one user's behaviour. A task
that ran without a device (server fallback) counts its user, or its session
when anonymous, as its device.

Counts, rates, pass rates and means are computed in the database.
Percentiles are computed in Python over at most ``MAX_SAMPLES`` of the most
recent tasks per group, with linear interpolation between closest ranks
(the default of ``numpy.percentile``).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from django.db.models import Avg, Count, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from django_offload.conf import offload_settings
from django_offload.models import Score, Task

MAX_SAMPLES = 20_000
MAX_DAYS = 366
Status = Task.Status
FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.EXPIRED, Status.FELL_BACK)
IN_PROGRESS = (Status.PENDING, Status.LEASED, Status.RUNNING)
GROUP_FIELDS = (
    "prompt_version",
    "prompt_version__prompt__name",
    "prompt_version__number",
    "model_id",
    "variant",
    "backend",
)
KEY_FIELDS = ("prompt_version", "model_id", "variant", "backend")
# Outcome of each status in the daily chart, in stacking order.
OUTCOMES = {
    "succeeded": (Status.SUCCEEDED,),
    "fell_back": (Status.FELL_BACK,),
    "failed": (Status.FAILED, Status.EXPIRED),
    "in_progress": IN_PROGRESS,
}

GroupKey = tuple[int, str, str, str]


def percentile(values: Sequence[float], q: float) -> float | None:
    """
    Return the ``q``-th percentile (0-100) of ``values`` by linear
    interpolation between closest ranks, or None for no values.
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def parse_range(
    start: str | dt.date | None, end: str | dt.date | None, default_days: int = 30
) -> tuple[dt.date, dt.date]:
    """
    Parse an inclusive date range; missing ends default to the last
    ``default_days`` days. Raises ValueError naming the bad parameter.
    """
    today = timezone.localdate()
    end_date = _parse_date(end, "end") or today
    start_date = _parse_date(start, "start") or end_date - dt.timedelta(
        days=default_days - 1
    )
    if start_date > end_date:
        raise ValueError(f"start {start_date} is after end {end_date}.")
    if (end_date - start_date).days >= MAX_DAYS:
        raise ValueError(
            f"The range {start_date} to {end_date} is longer than {MAX_DAYS} days; "
            "choose a shorter range."
        )
    return start_date, end_date


def _parse_date(value: str | dt.date | None, name: str) -> dt.date | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(
            f"{name}: expected a date as YYYY-MM-DD, got {str(value)[:40]!r}."
        ) from None


def tasks_in_range(start: dt.date, end: dt.date) -> QuerySet[Task]:
    """
    Return the tasks created from the start of ``start`` to the end of
    ``end`` in the current time zone.
    """
    zone = timezone.get_current_timezone()
    since = dt.datetime.combine(start, dt.time.min, tzinfo=zone)
    until = dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=zone)
    return Task.objects.filter(created_at__gte=since, created_at__lt=until)


def _key(row: dict[str, Any]) -> GroupKey:
    return tuple(row[field] for field in KEY_FIELDS)  # type: ignore[return-value]


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _group_rows(tasks: QuerySet[Task]) -> list[dict[str, Any]]:
    no_device = Q(device__isnull=True)
    anonymous = no_device & Q(user__isnull=True) & ~Q(session_key="")

    def count(statuses: Iterable[str]) -> Count:
        return Count("id", filter=Q(status__in=list(statuses)))

    return list(
        tasks.values(*GROUP_FIELDS)
        .annotate(
            tasks=Count("id"),
            devices=Count("device", distinct=True),
            server_users=Count("user", distinct=True, filter=no_device),
            server_sessions=Count("session_key", distinct=True, filter=anonymous),
            succeeded=count([Status.SUCCEEDED]),
            failed=count([Status.FAILED, Status.EXPIRED]),
            fell_back=count([Status.FELL_BACK]),
            in_progress=count(IN_PROGRESS),
        )
        .order_by("prompt_version__prompt__name", "-prompt_version__number")
    )


def _build_group(row: dict[str, Any]) -> dict[str, Any]:
    finished = row["succeeded"] + row["failed"] + row["fell_back"]
    return {
        "prompt": row["prompt_version__prompt__name"],
        "prompt_version": row["prompt_version__number"],
        "prompt_version_id": row["prompt_version"],
        "model_id": row["model_id"],
        "variant": row["variant"],
        "backend": row["backend"],
        "tasks": row["tasks"],
        "devices": row["population"],
        "succeeded": row["succeeded"],
        "failed": row["failed"],
        "fell_back": row["fell_back"],
        "in_progress": row["in_progress"],
        "success_rate": _rate(row["succeeded"], finished),
        "failure_rate": _rate(row["failed"], finished),
        "fallback_rate": _rate(row["fell_back"], finished),
        "fallback_reasons": {},
        "evaluators": {},
        "latency_ms": {"p50": None, "p95": None},
        "ttft_ms": {"p50": None, "p95": None},
        "decode_tps_median": None,
        "threads": {},
    }


def _add_fallback_reasons(
    tasks: QuerySet[Task], groups: dict[GroupKey, dict[str, Any]]
) -> None:
    rows = (
        tasks.exclude(fallback_reason="")
        .values(*KEY_FIELDS, "fallback_reason")
        .annotate(count=Count("id"))
        .order_by("-count", "fallback_reason")
    )
    for row in rows:
        group = groups.get(_key(row))
        if group is not None:
            group["fallback_reasons"][row["fallback_reason"]] = row["count"]


def _add_threads(tasks: QuerySet[Task], groups: dict[GroupKey, dict[str, Any]]) -> None:
    rows = (
        tasks.filter(threads__isnull=False)
        .values(*KEY_FIELDS, "threads")
        .annotate(count=Count("id"))
        .order_by("threads")
    )
    for row in rows:
        group = groups.get(_key(row))
        if group is not None:
            group["threads"][str(row["threads"])] = row["count"]


def _add_scores(tasks: QuerySet[Task], groups: dict[GroupKey, dict[str, Any]]) -> None:
    prefixed = [f"task__{field}" for field in KEY_FIELDS]
    rows = (
        Score.objects.filter(task__in=tasks)
        .values(*prefixed, "name")
        .annotate(
            scores=Count("id"),
            evaluated=Count("id", filter=Q(passed__isnull=False)),
            passed_count=Count("id", filter=Q(passed=True)),
            mean=Avg("value", filter=Q(data_type=Score.DataType.NUMERIC)),
        )
        .order_by("name")
    )
    for row in rows:
        group = groups.get(tuple(row[field] for field in prefixed))  # type: ignore[arg-type]
        if group is None:
            continue
        group["evaluators"][row["name"]] = {
            "scores": row["scores"],
            "evaluated": row["evaluated"],
            "passed": row["passed_count"],
            "pass_rate": _rate(row["passed_count"], row["evaluated"]),
            "mean": row["mean"],
        }


def _add_percentiles(
    tasks: QuerySet[Task], groups: dict[GroupKey, dict[str, Any]]
) -> dict[tuple[dt.date, int], list[float]]:
    """
    Fill latency, TTFT and decode-rate percentiles per group; return the
    latencies per (day, prompt version) for the daily chart.
    """
    samples: dict[GroupKey, dict[str, list[float]]] = defaultdict(
        lambda: {"latency_ms": [], "ttft_ms": [], "decode_tps": []}
    )
    sampled: dict[GroupKey, int] = defaultdict(int)
    daily: dict[tuple[dt.date, int], list[float]] = defaultdict(list)
    rows = (
        tasks.filter(status__in=FINISHED)
        .annotate(day=TruncDate("created_at"))
        .order_by("-created_at")
        .values_list(*KEY_FIELDS, "day", "latency_ms", "ttft_ms", "decode_tps")
    )
    for *key_values, day, latency, ttft, tps in rows.iterator(chunk_size=2000):
        key = tuple(key_values)
        if key not in groups or sampled[key] >= MAX_SAMPLES:
            continue
        sampled[key] += 1
        bucket = samples[key]
        for name, value in (("latency_ms", latency), ("ttft_ms", ttft)):
            if value is not None:
                bucket[name].append(value)
        if tps is not None:
            bucket["decode_tps"].append(tps)
        if latency is not None:
            daily[(day, key[0])].append(latency)
    for key, bucket in samples.items():
        group = groups[key]
        for name in ("latency_ms", "ttft_ms"):
            group[name] = {
                "p50": percentile(bucket[name], 50),
                "p95": percentile(bucket[name], 95),
            }
        group["decode_tps_median"] = percentile(bucket["decode_tps"], 50)
    return daily


def _daily(
    tasks: QuerySet[Task],
    groups: dict[GroupKey, dict[str, Any]],
    latencies: dict[tuple[dt.date, int], list[float]],
    start: dt.date,
    end: dt.date,
) -> dict[str, Any]:
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    index = {day: i for i, day in enumerate(days)}
    outcome_of = {
        status: name for name, statuses in OUTCOMES.items() for status in statuses
    }
    outcomes = {name: [0] * len(days) for name in OUTCOMES}
    rows = (
        tasks.annotate(day=TruncDate("created_at"))
        .values(*KEY_FIELDS, "day", "status")
        .annotate(count=Count("id"))
        .order_by()
    )
    for row in rows:
        if _key(row) in groups and row["day"] in index:
            outcomes[outcome_of[row["status"]]][index[row["day"]]] += row["count"]

    labels = {
        group["prompt_version_id"]: f"{group['prompt']} v{group['prompt_version']}"
        for group in groups.values()
    }
    latency_p50: dict[str, list[float | None]] = {}
    for version_id, label in sorted(labels.items(), key=lambda item: item[1]):
        latency_p50[label] = [
            percentile(latencies.get((day, version_id), []), 50) for day in days
        ]
    return {
        "days": [day.isoformat() for day in days],
        "outcomes": outcomes,
        "latency_p50": latency_p50,
    }


def _device_mix(tasks: QuerySet[Task], min_devices: int) -> dict[str, Any]:
    with_device = tasks.filter(device__isnull=False)
    total = with_device.aggregate(n=Count("device", distinct=True))["n"]
    if total < min_devices:
        return {"devices": None, "backends": {}, "threads": {}}
    backends = {
        row["device__backend"]: row["n"]
        for row in with_device.values("device__backend")
        .annotate(n=Count("device", distinct=True))
        .order_by("device__backend")
    }
    threads = {
        str(row["device__threads"]): row["n"]
        for row in with_device.values("device__threads")
        .annotate(n=Count("device", distinct=True))
        .order_by("device__threads")
    }
    return {"devices": total, "backends": backends, "threads": threads}


def compute_metrics(
    start: dt.date, end: dt.date, *, min_devices: int | None = None
) -> dict[str, Any]:
    """
    Aggregate the tasks created from ``start`` to ``end`` (inclusive).

    Returns ``{"start", "end", "min_group_devices", "hidden_groups",
    "groups", "device_mix", "daily"}``; see docs/admin.md for every field.
    Hidden groups are left out of every other figure.
    """
    if min_devices is None:
        min_devices = int(offload_settings.MIN_GROUP_DEVICES)
    tasks = tasks_in_range(start, end)

    groups: dict[GroupKey, dict[str, Any]] = {}
    hidden = 0
    for row in _group_rows(tasks):
        # A device-less task counts its user or anonymous session as a device.
        row["population"] = (
            row["devices"] + row["server_users"] + row["server_sessions"]
        )
        if row["population"] < min_devices:
            hidden += 1
            continue
        groups[_key(row)] = _build_group(row)

    _add_fallback_reasons(tasks, groups)
    _add_threads(tasks, groups)
    _add_scores(tasks, groups)
    latencies = _add_percentiles(tasks, groups)
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "min_group_devices": min_devices,
        "hidden_groups": hidden,
        "groups": list(groups.values()),
        "device_mix": _device_mix(tasks, min_devices),
        "daily": _daily(tasks, groups, latencies, start, end),
    }


CSV_COLUMNS = (
    "prompt",
    "prompt_version",
    "model_id",
    "variant",
    "backend",
    "tasks",
    "devices",
    "succeeded",
    "failed",
    "fell_back",
    "in_progress",
    "success_rate",
    "failure_rate",
    "fallback_rate",
    "latency_p50_ms",
    "latency_p95_ms",
    "ttft_p50_ms",
    "ttft_p95_ms",
    "decode_tps_median",
    "fallback_reasons",
    "evaluator_pass_rates",
    "evaluator_means",
)


def csv_rows(report: dict[str, Any]) -> list[list[Any]]:
    """
    Flatten the groups of a report into CSV rows under ``CSV_COLUMNS``.
    Evaluator figures and fallback reasons are ``name=value`` pairs joined
    by ``;``.
    """
    rows = []
    for group in report["groups"]:
        evaluators = group["evaluators"]
        rows.append(
            [
                *(group[name] for name in CSV_COLUMNS[:14]),
                group["latency_ms"]["p50"],
                group["latency_ms"]["p95"],
                group["ttft_ms"]["p50"],
                group["ttft_ms"]["p95"],
                group["decode_tps_median"],
                ";".join(f"{k}={v}" for k, v in group["fallback_reasons"].items()),
                ";".join(
                    f"{name}={figures['pass_rate']}"
                    for name, figures in evaluators.items()
                    if figures["pass_rate"] is not None
                ),
                ";".join(
                    f"{name}={figures['mean']}"
                    for name, figures in evaluators.items()
                    if figures["mean"] is not None
                ),
            ]
        )
    return rows
