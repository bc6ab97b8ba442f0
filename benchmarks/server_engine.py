#!/usr/bin/env python
"""
Benchmark of the server engine on each SmolLM2 variant of the model store.

For every variant a fresh Python process loads the model and runs a fixed
50-token prompt several times with 64 greedy new tokens; the parent samples
the child's resident memory with psutil to record its peak. Printed per
variant: file size, load time, median prefill time, median decode tokens/s
and peak memory.

Usage (from the repository root):
    OFFLOAD_MODEL_STORE=/path/to/store python benchmarks/server_engine.py \
        [--runs 5] [--threads 2] [--variant q4 ...]

Numbers depend on the machine and its load; record them with the hardware.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
MODEL_ID = "smollm2-135m-instruct"
PROMPT_TOKENS = 50
NEW_TOKENS = 64
PROMPT_TEXT = (
    "The history of the printing press begins in the fifteenth century, when "
    "a goldsmith in Mainz combined movable metal type, oil-based ink and a "
    "wooden screw press. Within fifty years printers worked in more than two "
    "hundred European towns, and the price of books fell sharply, which "
    "changed how people learned, argued and kept records."
)


def child(store: Path, variant: str, runs: int, threads: int) -> None:
    """
    Load one variant, run the prompt ``runs`` times and print JSON results.
    """
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from django_offload.engine import GenerationParams, TextModel

    model = TextModel.load(store / MODEL_ID, variant, threads=threads)
    ids = model.encode(PROMPT_TEXT)[:PROMPT_TOKENS]
    if len(ids) != PROMPT_TOKENS:
        raise SystemExit(f"The prompt has {len(ids)} tokens, need {PROMPT_TOKENS}.")
    params = GenerationParams(max_new_tokens=NEW_TOKENS, temperature=0.0)
    # One warm-up run, not counted.
    model.generate(ids, params)
    results = []
    for _ in range(runs):
        result = model.generate(ids, params)
        results.append(
            {
                "prefill_s": result.timings["prefill_s"],
                "decode_tokens_per_s": result.timings["decode_tokens_per_s"],
                "completion_tokens": result.completion_tokens,
            }
        )
    print(json.dumps({"load_s": model.load_seconds, "runs": results}))


def measure(store: Path, variant: str, runs: int, threads: int) -> dict:
    """
    Run ``child`` for one variant in a new process; return its figures and
    the peak resident memory sampled every 20 ms.
    """
    command = [
        sys.executable,
        __file__,
        "--child",
        variant,
        "--store",
        str(store),
        "--runs",
        str(runs),
        "--threads",
        str(threads),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT, text=True
    )
    watched = psutil.Process(process.pid)
    peak = 0
    while process.poll() is None:
        try:
            peak = max(peak, watched.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.02)
    output = process.stdout.read()
    if process.returncode != 0:
        raise SystemExit(f"The {variant} run failed with exit {process.returncode}.")
    data = json.loads(output.strip().splitlines()[-1])
    data["peak_rss"] = peak
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--store", default=os.environ.get("OFFLOAD_MODEL_STORE"))
    parser.add_argument("--runs", type=int, default=5, help="Timed runs per variant.")
    parser.add_argument("--threads", type=int, default=2, help="Intra-op threads.")
    parser.add_argument("--variant", action="append", help="Variant (default: all).")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.store:
        raise SystemExit("Pass --store or set OFFLOAD_MODEL_STORE.")
    store = Path(args.store)
    sys.path.insert(0, str(ROOT))
    if args.child:
        child(store, args.child, args.runs, args.threads)
        return

    from django_offload.modelstore import load_manifest

    manifest = load_manifest(store / MODEL_ID)
    variants = args.variant or list(manifest["variants"])
    print(
        f"{MODEL_ID}: {PROMPT_TOKENS}-token prompt, {NEW_TOKENS} greedy tokens, "
        f"median of {args.runs} runs, {args.threads} threads, "
        f"{psutil.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    print("| variant | file MB | load s | prefill ms | decode tok/s | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for variant in variants:
        data = measure(store, variant, args.runs, args.threads)
        runs = data["runs"]
        prefill = statistics.median(run["prefill_s"] for run in runs)
        decode = statistics.median(run["decode_tokens_per_s"] for run in runs)
        tokens = {run["completion_tokens"] for run in runs}
        note = "" if tokens == {NEW_TOKENS} else f" (tokens {sorted(tokens)})"
        print(
            f"| {variant} | {manifest['variants'][variant]['bytes'] / 1e6:.1f} "
            f"| {data['load_s']:.2f} | {prefill * 1000:.0f} | {decode:.1f}{note} "
            f"| {data['peak_rss'] / 1e6:.0f} |",
            flush=True,
        )
    print(f"Load average after the runs: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
