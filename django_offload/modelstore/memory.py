"""
Measurement of the peak memory a variant needs: a fresh Python process
creates an onnxruntime session for the file and runs one short forward pass,
then reports its own peak resident set size (Linux ``VmHWM``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# Runs in the child process. It fills every input with a small valid tensor:
# two tokens, an empty KV cache for a decoder.
_CHILD = r"""
import json, sys
import numpy as np
import onnxruntime as ort

options = ort.SessionOptions()
options.intra_op_num_threads = 1
session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
feeds = {}
for spec in session.get_inputs():
    if spec.name.startswith("past_key_values"):
        shape = [1 if not isinstance(d, int) else d for d in spec.shape]
        shape[2] = 0
        feeds[spec.name] = np.zeros(shape, np.float32)
    elif spec.name == "position_ids":
        feeds[spec.name] = np.array([[0, 1]], np.int64)
    elif spec.name == "input_ids":
        feeds[spec.name] = np.array([[1, 2]], np.int64)
    else:
        feeds[spec.name] = np.ones((1, 2), np.int64) * (spec.name != "token_type_ids")
session.run(None, feeds)
# VmHWM, unlike ru_maxrss, is not inherited from the parent across exec.
with open("/proc/self/status") as status:
    line = next(line for line in status if line.startswith("VmHWM:"))
print(json.dumps({"peak_bytes": int(line.split()[1]) * 1024}))
"""


def measure_memory_bytes(onnx_path: Path, timeout: float = 600.0) -> int:
    """
    Return the peak resident memory, in bytes, of a process that loads
    ``onnx_path`` into onnxruntime and runs it once on two tokens.
    """
    completed = subprocess.run(
        [sys.executable, "-c", _CHILD, str(onnx_path)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"Measuring the memory of {str(onnx_path)!r} failed "
            f"(exit {completed.returncode}): {completed.stderr[-2000:]}"
        )
    return int(json.loads(completed.stdout.strip().splitlines()[-1])["peak_bytes"])
