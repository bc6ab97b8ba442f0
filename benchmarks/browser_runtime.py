#!/usr/bin/env python
"""
Compare the device engine in headless Chromium with transformers.js and the
native server engine on the same model files.

For each text-model variant it measures, after one warm-up generation, the
median decode speed, time to first token and session creation time of
``--runs`` greedy generations of ``--new-tokens`` tokens after a chat prompt
of about 50 tokens, and the peak memory of the process that ran them:

- ours: ``static/django_offload/engine.js`` in a module Web Worker in
  Chromium, WASM backend, 1 thread on a plain page and 2 threads on a
  cross-origin isolated (COOP/COEP) page;
- tjs: transformers.js 4.3.1, installed here with npm into a temporary folder
  (never shipped), reading the same files with remote models off;
- native: ``django_offload.engine.TextModel`` with onnxruntime, 1 and 2
  threads, each in its own Python process.

Files are served by a small HTTP server on 127.0.0.1 inside this script.
Needs Chromium at /usr/bin/chromium (or ``--chromium``), Playwright for
Python, npm for transformers.js, and the model store:

    OFFLOAD_MODEL_STORE=offload_models python benchmarks/browser_runtime.py
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "django_offload" / "static"
PAGES = Path(__file__).resolve().parent / "browser"
MODEL_ID = "smollm2-135m-instruct"
TJS_PACKAGE = "@huggingface/transformers@4.3.1"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# The prompt of the server engine's decode benchmark, so numbers compare.
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
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".onnx": "application/octet-stream",
}
# Seconds one configuration may take: loading fp32 and 4 generations take
# about 60 s on two shared cores, the 4-bit WASM kernel several minutes.
CONFIG_TIMEOUT_S = 900


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--store",
        type=Path,
        default=os.environ.get("OFFLOAD_MODEL_STORE"),
        help="model store folder (default: $OFFLOAD_MODEL_STORE)",
    )
    parser.add_argument(
        "--variants",
        nargs="*",
        default=["fp32", "q4f", "q4"],
        help="text-model variants to run (default: fp32 q4f q4)",
    )
    parser.add_argument("--runs", type=int, default=3, help="measured runs each")
    parser.add_argument("--new-tokens", type=int, default=64, help="greedy tokens")
    parser.add_argument(
        "--runners",
        nargs="*",
        default=["ours", "tjs", "native"],
        help="engines to measure (default: ours tjs native)",
    )
    parser.add_argument(
        "--tjs-dir",
        type=Path,
        help="folder with transformers.js already installed (default: install "
        "it into a temporary folder)",
    )
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args()
    if args.store is None:
        parser.error("set --store or OFFLOAD_MODEL_STORE to the model store folder")
    if args.runs < 1 or args.new_tokens < 2:
        parser.error("--runs must be at least 1 and --new-tokens at least 2")
    return args


class FileHandler(http.server.SimpleHTTPRequestHandler):
    """
    Serves the static folder, the model store, the benchmark pages and
    transformers.js under fixed prefixes, with COOP/COEP when ``isolated``.
    """

    roots: dict[str, Path] = {}
    isolated = False

    def translate_path(self, path: str) -> str:
        path = path.split("?", 1)[0].split("#", 1)[0]
        for prefix, root in self.roots.items():
            if path.startswith(prefix):
                target = (root / path[len(prefix) :]).resolve()
                if target == root or root in target.parents:
                    return str(target)
        return str(Path(tempfile.gettempdir()) / "offload-bench-not-found")

    def guess_type(self, path: str) -> str:
        return CONTENT_TYPES.get(Path(path).suffix, "application/octet-stream")

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        if self.isolated:
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve(roots: dict[str, Path], *, isolated: bool):
    """
    Run a file server on a free 127.0.0.1 port and yield its base URL.
    """
    handler = type(
        "BenchHandler", (FileHandler,), {"roots": roots, "isolated": isolated}
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class PeakMemory:
    """
    Samples the resident memory of a process and its children every 0.2 s
    and keeps the peak of their sum, in bytes.

    Summing RSS counts pages shared between Chromium's processes more than
    once, so the figure is an upper bound.
    """

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            total = 0
            with contextlib.suppress(psutil.Error):
                for process in [self.process, *self.process.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        total += process.memory_info().rss
            self.peak = max(self.peak, total)
            self._stop.wait(0.2)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def install_tjs(folder: Path) -> Path:
    """
    Install transformers.js into ``folder`` with npm and return the folder.

    Install scripts are skipped: the only one, onnxruntime-node's, downloads
    a native binary that the web build does not use.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "package.json").write_text('{"private": true}\n', encoding="utf-8")
    subprocess.run(
        ["npm", "install", "--ignore-scripts", "--no-audit", "--no-fund", TJS_PACKAGE],
        cwd=folder,
        check=True,
        capture_output=True,
        timeout=600,
    )
    return folder


def browser_pid(browser) -> int:
    """
    Return the pid of the Chromium browser process Playwright launched.
    """
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "chrom" in child.name() and "--type=" not in " ".join(child.cmdline()):
                return child.pid
    raise RuntimeError(f"No Chromium process found for {browser!r}.")


def run_browser(args, base_url: str, config: dict) -> dict:
    """
    Run one configuration in a fresh headless Chromium and return its row.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=args.chromium, args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(CONFIG_TIMEOUT_S * 1000)
            page.goto(f"{base_url}/bench/page.html")
            page.wait_for_function("typeof globalThis.offloadBench === 'function'")
            with PeakMemory(browser_pid(browser)) as memory:
                result = page.evaluate("(config) => offloadBench(config)", config)
            result["peak_memory_bytes"] = memory.peak
        finally:
            browser.close()
    return result


NATIVE_SCRIPT = """
import json, resource, statistics, sys
# Appended, so a django_offload on PYTHONPATH is found first.
sys.path.append(sys.argv[1])
from django_offload.engine import GenerationParams, TextModel
model_dir, variant, threads, runs, new_tokens = sys.argv[2:7]
messages = json.loads(sys.stdin.read())
model = TextModel.load(model_dir, variant, threads=int(threads))
params = GenerationParams(max_new_tokens=int(new_tokens))
model.generate(messages, params)
results = [model.generate(messages, params) for _ in range(int(runs))]
print(json.dumps({
    "sessionMs": model.load_seconds * 1000,
    "threads": int(threads),
    "runs": [{
        "ttftMs": r.timings["ttft_s"] * 1000,
        "decodeTokensPerSecond": r.timings["decode_tokens_per_s"],
        "promptTokens": r.prompt_tokens,
        "completionTokens": r.completion_tokens,
        "tokenIds": r.token_ids,
    } for r in results],
    "peak_memory_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
}))
"""


def run_native(args, variant: str, threads: int) -> dict:
    """
    Run the server engine in a child Python process and return its row.
    """
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            NATIVE_SCRIPT,
            str(ROOT),
            str(args.store / MODEL_ID),
            variant,
            str(threads),
            str(args.runs),
            str(args.new_tokens),
        ],
        input=json.dumps(MESSAGES),
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
        timeout=CONFIG_TIMEOUT_S,
        check=False,
    )
    if completed.returncode != 0:
        return {"error": completed.stderr.strip().splitlines()[-1:]}
    return json.loads(completed.stdout)


def summarise(runner: str, variant: str, setting: str, result: dict) -> dict:
    """
    Reduce one configuration's measurements to a table row of medians.
    """
    row = {"runner": runner, "variant": variant, "setting": setting}
    if "error" in result:
        return row | {"error": result["error"]}
    runs = result["runs"]
    return row | {
        "decode_tok_s": statistics.median(r["decodeTokensPerSecond"] for r in runs),
        "ttft_ms": statistics.median(r["ttftMs"] for r in runs),
        "session_ms": result["sessionMs"],
        "peak_memory_mb": result["peak_memory_bytes"] / 2**20,
        "prompt_tokens": runs[0]["promptTokens"],
        "completion_tokens": [r["completionTokens"] for r in runs],
        "token_ids": runs[0]["tokenIds"],
        "threads": result.get("threads"),
        "isolated": result.get("isolated"),
    }


def measure(args, variants: list[str], tjs_dir: Path | None) -> list[dict]:
    """
    Run every requested engine and variant and return the table rows.
    """
    roots = {
        "/static/": STATIC,
        "/models/": args.store.resolve(),
        "/bench/": PAGES,
    }
    if tjs_dir is not None:
        roots["/tjs/"] = tjs_dir.resolve()
    rows = []
    with (
        serve(roots, isolated=False) as plain_url,
        serve(roots, isolated=True) as isolated_url,
    ):
        for variant in variants:
            base = {
                "model": MODEL_ID,
                "variant": variant,
                "runs": args.runs,
                "maxNewTokens": args.new_tokens,
                "messages": MESSAGES,
            }
            if "ours" in args.runners:
                for threads, url in ((1, plain_url), (2, isolated_url)):
                    config = base | {"runner": "ours", "threads": threads}
                    result = run_browser(args, url, config)
                    rows.append(summarise("ours", variant, f"wasm {threads}t", result))
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
            if "tjs" in args.runners and tjs_dir is not None:
                config = base | {"runner": "tjs", "threads": 1}
                result = run_browser(args, plain_url, config)
                rows.append(summarise("tjs", variant, "wasm 1t", result))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
            if "native" in args.runners:
                for threads in (1, 2):
                    result = run_native(args, variant, threads)
                    rows.append(summarise("native", variant, f"{threads}t", result))
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def ratio(ours: dict, other: dict | None) -> str:
    """
    Format ours/other of decode speed, or "-" when either is missing.
    """
    if not other or "decode_tok_s" not in ours or "decode_tok_s" not in other:
        return "-"
    return f"{ours['decode_tok_s'] / other['decode_tok_s']:.2f}"


def table(rows: list[dict]) -> str:
    """
    Format the rows as a Markdown table with the ratios of our rows.
    """
    lines = [
        "| engine | variant | setting | decode tok/s | TTFT ms | session ms "
        "| peak MB | ours/tjs | ours/native | same ids |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    by_key = {(r["runner"], r["variant"], r["setting"]): r for r in rows}
    # Greedy decoding of the same weights must give the same tokens everywhere.
    first_ids = next((r["token_ids"] for r in rows if "token_ids" in r), None)
    for row in rows:
        if "error" in row:
            lines.append(
                f"| {row['runner']} | {row['variant']} | {row['setting']} "
                f"| failed: {row['error']} | | | | | | |"
            )
            continue
        versus_tjs = versus_native = ""
        if row["runner"] == "ours":
            threads = row["setting"].split()[-1]
            tjs = by_key.get(("tjs", row["variant"], f"wasm {threads}"))
            native = by_key.get(("native", row["variant"], threads))
            versus_tjs = ratio(row, tjs)
            versus_native = ratio(row, native)
        lines.append(
            f"| {row['runner']} | {row['variant']} | {row['setting']} "
            f"| {row['decode_tok_s']:.1f} | {row['ttft_ms']:.0f} "
            f"| {row['session_ms']:.0f} | {row['peak_memory_mb']:.0f} "
            f"| {versus_tjs} | {versus_native} "
            f"| {'yes' if row['token_ids'] == first_ids else 'no'} |"
        )
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    manifest = json.loads((args.store / MODEL_ID / "manifest.json").read_text())
    variants = [v for v in args.variants if v in manifest["variants"]]
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="offload-tjs-") as temporary:
        tjs_dir = args.tjs_dir
        if tjs_dir is None and "tjs" in args.runners:
            tjs_dir = install_tjs(Path(temporary))
        rows = measure(args, variants, tjs_dir)
    print(table(rows))
    print(
        f"\n{platform.machine()}, {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB; "
        f"{args.runs} runs of {args.new_tokens} tokens; "
        f"took {time.monotonic() - started:.0f} s; 1-minute load average "
        f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
