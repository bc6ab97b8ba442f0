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
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from django.db.models import Avg, Case, Count, IntegerField, Q, QuerySet, Value, When
from django.utils import timezone

from django_offload.conf import offload_settings
from django_offload.models import Device, Score, Task

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


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=timezone.get_current_timezone())


def _range_filter(start: dt.date, end: dt.date, prefix: str = "") -> Q:
    return Q(
        **{
            f"{prefix}created_at__gte": _midnight(start),
            f"{prefix}created_at__lt": _midnight(end + dt.timedelta(days=1)),
        }
    )


def tasks_in_range(start: dt.date, end: dt.date) -> QuerySet[Task]:
    """
    Return the tasks created from the start of ``start`` to the end of
    ``end`` in the current time zone.
    """
    return Task.objects.filter(_range_filter(start, end))


def day_index(start: dt.date, end: dt.date) -> Case:
    """
    Return an SQL expression giving the day of a task's ``created_at``
    within the range, 0 for ``start``, for tasks already in the range.
    """
    # Comparisons with local midnights run natively in every database, while
    # SQLite computes TruncDate with a Python function per row.
    days = (end - start).days + 1
    whens = [
        When(created_at__lt=_midnight(start + dt.timedelta(days=i + 1)), then=Value(i))
        for i in range(days - 1)
    ]
    return Case(*whens, default=Value(days - 1), output_field=IntegerField())


def _key(row: dict[str, Any]) -> GroupKey:
    return tuple(row[field] for field in KEY_FIELDS)  # type: ignore[return-value]


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _group_rows(tasks: QuerySet[Task]) -> list[dict[str, Any]]:
    no_device = Q(device__isnull=True)
    anonymous = no_device & Q(user__isnull=True) & ~Q(session_key="")
    return list(
        tasks.values(*GROUP_FIELDS)
        .annotate(
            tasks=Count("id"),
            devices=Count("device", distinct=True),
            server_users=Count("user", distinct=True, filter=no_device),
            server_sessions=Count("session_key", distinct=True, filter=anonymous),
        )
        .order_by("prompt_version__prompt__name", "-prompt_version__number")
    )


def _build_group(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "prompt": row["prompt_version__prompt__name"],
        "prompt_version": row["prompt_version__number"],
        "prompt_version_id": row["prompt_version"],
        "model_id": row["model_id"],
        "variant": row["variant"],
        "backend": row["backend"],
        "tasks": row["tasks"],
        "devices": row["population"],
        **{name: 0 for name in OUTCOMES},
        "success_rate": None,
        "failure_rate": None,
        "fallback_rate": None,
        "fallback_reasons": {},
        "evaluators": {},
        "latency_ms": {"p50": None, "p95": None},
        "ttft_ms": {"p50": None, "p95": None},
        "decode_tps_median": None,
        "threads": {},
    }


def _add_counts(
    tasks: QuerySet[Task],
    groups: dict[GroupKey, dict[str, Any]],
    start: dt.date,
    end: dt.date,
) -> dict[str, list[int]]:
    """
    Fill each group's outcome counts, rates, fallback reasons and thread
    counts, and return the daily outcome counts, all from one query.
    """
    days = (end - start).days + 1
    outcome_of = {
        status: name for name, statuses in OUTCOMES.items() for status in statuses
    }
    daily = {name: [0] * days for name in OUTCOMES}
    reasons: dict[GroupKey, Counter[str]] = defaultdict(Counter)
    threads: dict[GroupKey, Counter[int]] = defaultdict(Counter)
    rows = (
        tasks.annotate(day=day_index(start, end))
        .values(*KEY_FIELDS, "day", "status", "threads", "fallback_reason")
        .annotate(count=Count("id"))
        .order_by()
    )
    for row in rows:
        key = _key(row)
        group = groups.get(key)
        if group is None:
            continue
        outcome = outcome_of[row["status"]]
        group[outcome] += row["count"]
        daily[outcome][row["day"]] += row["count"]
        if row["fallback_reason"]:
            reasons[key][row["fallback_reason"]] += row["count"]
        if row["threads"] is not None:
            threads[key][row["threads"]] += row["count"]

    for key, group in groups.items():
        finished = group["succeeded"] + group["failed"] + group["fell_back"]
        group["success_rate"] = _rate(group["succeeded"], finished)
        group["failure_rate"] = _rate(group["failed"], finished)
        group["fallback_rate"] = _rate(group["fell_back"], finished)
        ordered = sorted(reasons[key].items(), key=lambda item: (-item[1], item[0]))
        group["fallback_reasons"] = dict(ordered)
        group["threads"] = {str(n): threads[key][n] for n in sorted(threads[key])}
    return daily


def _add_scores(
    start: dt.date, end: dt.date, groups: dict[GroupKey, dict[str, Any]]
) -> None:
    prefixed = [f"task__{field}" for field in KEY_FIELDS]
    # A join with a range filter, not "task__in" a subquery: SQLite plans
    # the join with the created_at index and runs it several times faster.
    rows = (
        Score.objects.filter(_range_filter(start, end, "task__"))
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
    tasks: QuerySet[Task],
    groups: dict[GroupKey, dict[str, Any]],
    day: Case,
) -> dict[tuple[int, int], list[float]]:
    """
    Fill latency, TTFT and decode-rate percentiles per group; return the
    latencies per (day index, prompt version) for the daily chart.
    """
    samples: dict[GroupKey, dict[str, list[float]]] = defaultdict(
        lambda: {"latency_ms": [], "ttft_ms": [], "decode_tps": []}
    )
    sampled: dict[GroupKey, int] = defaultdict(int)
    daily: dict[tuple[int, int], list[float]] = defaultdict(list)
    rows = (
        tasks.filter(status__in=FINISHED)
        .annotate(day=day)
        .order_by("-created_at")
        .values_list(*KEY_FIELDS, "day", "latency_ms", "ttft_ms", "decode_tps")
    )
    for *key_values, day_number, latency, ttft, tps in rows.iterator(chunk_size=2000):
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
            daily[(day_number, key[0])].append(latency)
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
    groups: dict[GroupKey, dict[str, Any]],
    outcomes: dict[str, list[int]],
    latencies: dict[tuple[int, int], list[float]],
    start: dt.date,
    end: dt.date,
) -> dict[str, Any]:
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    labels = {
        group["prompt_version_id"]: f"{group['prompt']} v{group['prompt_version']}"
        for group in groups.values()
    }
    latency_p50: dict[str, list[float | None]] = {}
    for version_id, label in sorted(labels.items(), key=lambda item: item[1]):
        latency_p50[label] = [
            percentile(latencies.get((i, version_id), []), 50) for i in range(len(days))
        ]
    return {
        "days": [day.isoformat() for day in days],
        "outcomes": outcomes,
        "latency_p50": latency_p50,
    }


def _device_mix(tasks: QuerySet[Task], min_devices: int) -> dict[str, Any]:
    # The few devices that ran tasks are counted in the device table.
    devices = Device.objects.filter(
        pk__in=tasks.filter(device__isnull=False).values("device")
    )
    total = devices.count()
    if total < min_devices:
        return {"devices": None, "backends": {}, "threads": {}}
    backends = {
        row["backend"]: row["n"]
        for row in devices.values("backend").annotate(n=Count("id")).order_by("backend")
    }
    threads = {
        str(row["threads"]): row["n"]
        for row in devices.values("threads").annotate(n=Count("id")).order_by("threads")
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

    outcomes = _add_counts(tasks, groups, start, end)
    _add_scores(start, end, groups)
    latencies = _add_percentiles(tasks, groups, day_index(start, end))
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "min_group_devices": min_devices,
        "hidden_groups": hidden,
        "groups": list(groups.values()),
        "device_mix": _device_mix(tasks, min_devices),
        "daily": _daily(groups, outcomes, latencies, start, end),
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
