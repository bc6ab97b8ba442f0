#!/usr/bin/env python
"""
Measure the server engine's greedy decoding speed for each text-model variant.

For every variant found in the store it loads the model, runs one warm-up
generation, then ``--runs`` generations of ``--new-tokens`` greedy tokens
after a chat prompt of about 50 tokens, and prints the medians as JSON lines.

    OFFLOAD_MODEL_STORE=offload_models python benchmarks/engine_decode.py --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODEL_ID = "smollm2-135m-instruct"
MESSAGES = [
    {
        "role": "user",
        "content": (
            "Write a long, detailed story about a lighthouse keeper who finds a "
            "message in a bottle, and describe the sea, the weather and the "
            "town in many sentences."
        ),
    }
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--store",
        type=Path,
        default=os.environ.get("OFFLOAD_MODEL_STORE"),
        help="model store folder (default: $OFFLOAD_MODEL_STORE)",
    )
    parser.add_argument("--variants", nargs="*", help="variants to run (default: all)")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads")
    parser.add_argument("--runs", type=int, default=5, help="measured runs per variant")
    parser.add_argument(
        "--new-tokens", type=int, default=64, help="greedy tokens per run"
    )
    args = parser.parse_args()
    if args.store is None:
        parser.error("set --store or OFFLOAD_MODEL_STORE to the model store folder")
    if args.runs < 1 or args.new_tokens < 2 or args.threads < 0:
        parser.error(
            "--runs must be at least 1, --new-tokens at least 2, --threads at least 0"
        )
    return args


def main() -> None:
    args = parse_args()
    from django_offload.engine import GenerationParams, TextModel
    from django_offload.engine.loading import read_manifest

    model_dir = args.store / MODEL_ID
    manifest = read_manifest(model_dir)
    variants = args.variants or sorted(manifest["variants"])
    params = GenerationParams(max_new_tokens=args.new_tokens)
    for variant in variants:
        model = TextModel.load(model_dir, variant, threads=args.threads)
        model.generate(MESSAGES, params)
        results = [model.generate(MESSAGES, params) for _ in range(args.runs)]
        print(
            json.dumps(
                {
                    "variant": variant,
                    "threads": args.threads,
                    "load_s": round(model.load_seconds, 2),
                    "prompt_tokens": results[0].prompt_tokens,
                    "completion_tokens": [r.completion_tokens for r in results],
                    "prefill_s": round(
                        statistics.median(r.timings["prefill_s"] for r in results), 4
                    ),
                    "ttft_s": round(
                        statistics.median(r.timings["ttft_s"] for r in results), 4
                    ),
                    "decode_tokens_per_s": round(
                        statistics.median(
                            r.timings["decode_tokens_per_s"] for r in results
                        ),
                        1,
                    ),
                    "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                }
            ),
            flush=True,
        )
        del model


if __name__ == "__main__":
    main()
