"""
The browser engine's sampling module picks the same tokens as this one.
"""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from django_offload.engine import GenerationParams
from django_offload.engine.sampling import TokenSelector

SAMPLING_JS = (
    Path(__file__).resolve().parents[2]
    / "django_offload"
    / "static"
    / "django_offload"
    / "sampling.js"
)
CASES = [
    {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "seed": 0},
    {"temperature": 0.7, "top_k": 40, "top_p": 0.95, "seed": 42},
    {"temperature": 1.3, "top_k": 0, "top_p": 0.8, "seed": 2**32 - 1},
    {"temperature": 0.2, "top_k": 5, "top_p": 1.0, "seed": 123456789},
    {"temperature": 0.0, "top_k": 0, "top_p": 1.0, "seed": 7},
]
STEPS = 40
RUNNER = """
import { readFileSync } from "node:fs";
const { TokenSelector } = await import(process.argv[1]);
const { cases, logits } = JSON.parse(readFileSync(0, "utf8"));
const rows = logits.map((row) => Float32Array.from(row));
const picks = cases.map((c) => {
  const selector = new TokenSelector({
    temperature: c.temperature, topK: c.top_k, topP: c.top_p, seed: c.seed,
  });
  return rows.map((row) => selector.select(row));
});
console.log(JSON.stringify(picks));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
@pytest.mark.skipif(
    not SAMPLING_JS.is_file(), reason="the browser sampling module is not present"
)
def test_sampling_matches_browser_engine():
    generator = np.random.default_rng(2024)
    # Logits shaped like a language model's: a few large values, a long tail,
    # and some exact ties.
    logits = (generator.standard_normal((STEPS, 2000)) * 3).astype(np.float32)
    logits[:, 10] = logits[:, 11]
    payload = json.dumps({"cases": CASES, "logits": logits.tolist()})
    completed = subprocess.run(
        [
            "node",
            "--input-type=module",
            "-e",
            RUNNER,
            SAMPLING_JS.as_uri(),
        ],
        input=payload,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    javascript = json.loads(completed.stdout)
    for case, picks in zip(CASES, javascript, strict=True):
        selector = TokenSelector(GenerationParams(**case))
        assert [selector(row) for row in logits] == picks, case
