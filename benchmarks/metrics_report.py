#!/usr/bin/env python
"""
Measure how long the metrics report takes on a synthetic task table.

It creates a throwaway SQLite database (or uses DEMO_POSTGRES_DB when set),
inserts ``--tasks`` finished tasks with two scores each, spread over 30
days, 4 prompt versions, 3 backends and ``--devices`` devices, then times
``compute_metrics`` over the 30 days ``--runs`` times and prints the median
as one JSON line.

    python benchmarks/metrics_report.py --tasks 100000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000, help="tasks to insert")
    parser.add_argument("--devices", type=int, default=200, help="distinct devices")
    parser.add_argument("--runs", type=int, default=3, help="timed reports")
    return parser.parse_args()


def seed(tasks: int, devices: int) -> None:
    from django_offload.models import Device, Prompt, PromptVersion, Score, Task

    rng = random.Random(1)
    prompt = Prompt.objects.create(name="bench")
    versions = [
        PromptVersion.objects.create(prompt=prompt, number=n, template="x")
        for n in range(1, 5)
    ]
    pool = Device.objects.bulk_create(
        Device(backend=rng.choice(["wasm", "webgpu"]), threads=rng.choice([1, 2, 4]))
        for _ in range(devices)
    )
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=29)
    batch = []
    for i in range(tasks):
        device = rng.choice(pool)
        batch.append(
            Task(
                prompt_version=rng.choice(versions),
                device=device,
                backend=device.backend,
                variant="q4f",
                model_id="smollm2-135m-instruct",
                status=rng.choice(["succeeded"] * 8 + ["failed", "fell_back"]),
                threads=device.threads,
                latency_ms=rng.lognormvariate(7, 0.3),
                ttft_ms=rng.lognormvariate(5, 0.3),
                decode_tps=rng.uniform(10, 40),
            )
        )
        if len(batch) == 5000 or i == tasks - 1:
            created = Task.objects.bulk_create(batch)
            for task in created:
                # Spread creation times over the 30 days.
                task.created_at = start + dt.timedelta(minutes=rng.randrange(43_000))
            Task.objects.bulk_update(created, ["created_at"])
            Score.objects.bulk_create(
                score
                for task in created
                for score in (
                    Score(task=task, name="ok", data_type="boolean", passed=True),
                    Score(task=task, name="sim", data_type="numeric", value=0.5),
                )
            )
            batch = []


def main() -> None:
    args = parse_args()
    folder = tempfile.mkdtemp(prefix="offload-bench-")
    os.environ.setdefault("DEMO_SQLITE_PATH", str(Path(folder) / "bench.sqlite3"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_project.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from django.db import connection
    from django.utils import timezone

    from django_offload.metrics import compute_metrics

    began = time.perf_counter()
    seed(args.tasks, args.devices)
    seed_seconds = time.perf_counter() - began

    end = timezone.localdate()
    start = end - dt.timedelta(days=29)
    timings = []
    for _ in range(args.runs):
        began = time.perf_counter()
        report = compute_metrics(start, end)
        timings.append(time.perf_counter() - began)
    print(
        json.dumps(
            {
                "tasks": args.tasks,
                "devices": args.devices,
                "groups": len(report["groups"]),
                "database": connection.vendor,
                "seed_s": round(seed_seconds, 1),
                "report_median_s": round(statistics.median(timings), 3),
                "runs": args.runs,
                "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            }
        )
    )


if __name__ == "__main__":
    main()
