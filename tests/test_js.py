"""
Run the JavaScript tests under ``tests/js`` with Node's built-in test runner,
so the whole suite runs from one pytest command.

The engine tests in there load the real model from ``OFFLOAD_MODEL_STORE``
(default: ``offload_models`` in the repository, as in the demo settings) and
skip themselves, with the reason, when the store lacks it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

JS_TESTS = Path(__file__).resolve().parent / "js"
# Loading the fp32 model and generating the reference cases takes about
# 90 s on two shared cores; the limit leaves room for a slower machine.
TIMEOUT_SECONDS = 900


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_js_suite_passes() -> None:
    """
    Run ``node --test tests/js/`` and fail with its report when a test fails.
    """
    # The embedding test compares with native onnxruntime run by this Python.
    environment = {**os.environ, "OFFLOAD_PYTHON": sys.executable}
    completed = subprocess.run(
        ["node", "--test", "--test-reporter=spec", str(JS_TESTS)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        env=environment,
        check=False,
    )
    report = completed.stdout + completed.stderr
    assert completed.returncode == 0, report[-20000:]
    assert "# fail 0" in report or "ℹ fail 0" in report, report[-20000:]
