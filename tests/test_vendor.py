"""
Tests of the vendored JavaScript packages and scripts/vendor_js --check.
"""

import runpy
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "vendor_js"


def load_script():
    return runpy.run_path(str(SCRIPT), run_name="vendor_js")


def test_vendor_check_committed_files_pass():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "3 packages match" in result.stdout


def test_vendor_check_tampered_file_fails(tmp_path):
    script = load_script()
    spec = next(s for s in script["PACKAGES"] if s["folder"] == "jinja")
    copy = tmp_path / "jinja"
    shutil.copytree(script["VENDOR"] / "jinja", copy)
    assert script["check"](spec, copy) == []

    with (copy / "index.js").open("ab") as handle:
        handle.write(b"\n// changed\n")
    problems = script["check"](spec, copy)
    assert problems == [f"{copy / 'index.js'} does not match its SHA-256 in SHA256SUMS"]


def test_vendor_check_extra_and_missing_files_fail(tmp_path):
    script = load_script()
    spec = next(s for s in script["PACKAGES"] if s["folder"] == "tokenizers")
    copy = tmp_path / "tokenizers"
    shutil.copytree(script["VENDOR"] / "tokenizers", copy)
    (copy / "tokenizers.min.mjs").unlink()
    (copy / "extra.js").write_text("export {};\n")

    problems = script["check"](spec, copy)
    assert f"{copy / 'extra.js'} is not listed in SHA256SUMS" in problems
    assert f"{copy / 'tokenizers.min.mjs'} is missing" in problems


def test_vendor_licences_present():
    script = load_script()
    for spec in script["PACKAGES"]:
        licence = (script["VENDOR"] / spec["folder"] / "LICENSE").read_text()
        assert "Permission is hereby granted" in licence or "Apache" in licence
    ort = (script["VENDOR"] / "onnxruntime-web" / "LICENSE").read_text()
    assert "Copyright (c) Microsoft Corporation" in ort
