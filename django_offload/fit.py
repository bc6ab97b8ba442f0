"""
Choice of the model variant, backend and thread count that fit one device.

The device describes itself with the capabilities JSON written by the page's
``probe.js``. ``validate_capabilities`` checks that JSON strictly because it
comes from an untrusted browser, and ``choose_variant`` picks a variant from
a model manifest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django_offload.conf import offload_settings

GIB = 1024**3
# ONNX Runtime Web's WASM build uses 32-bit linear memory, so a session on
# the wasm backend can never grow past 4 GiB whatever the device has.
WASM_MEMORY_LIMIT_BYTES = 4 * GIB
# Backends a browser can run, fastest first when both fit.
BROWSER_BACKENDS = ("webgpu", "wasm")
MAX_TEXT_CHARS = 256
MAX_LIMITS = 64

# Reason codes of a Fit.
FITS = "fits"
NO_CONSENT = "no-consent"
NO_SERVABLE_VARIANT = "no-servable-variant"
NO_BACKEND = "no-backend"
TOO_LITTLE_MEMORY = "too-little-memory"
TOO_LITTLE_STORAGE = "too-little-storage"


@dataclass(frozen=True)
class Fit:
    """
    Outcome of ``choose_variant``: the variant and how to run it, or None
    with the reason code.
    """

    variant: str | None
    backend: str | None
    threads: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """
        Return the fit as a JSON-ready dict.
        """
        return {
            "variant": self.variant,
            "backend": self.backend,
            "threads": self.threads,
            "reason": self.reason,
        }


def _fail(field: str, expected: str, value: Any) -> ValueError:
    return ValueError(f"capabilities{field} must be {expected}, got {value!r}.")


def _check_keys(value: Any, field: str, required: set, optional: set) -> None:
    if not isinstance(value, dict):
        raise _fail(field, "an object", value)
    unknown = sorted(set(value) - required - optional, key=str)
    if unknown:
        raise ValueError(
            f"capabilities{field} has unknown keys {unknown!r}; the known keys "
            f"are {sorted(required | optional)!r}."
        )
    missing = sorted(required - set(value))
    if missing:
        raise ValueError(f"capabilities{field} is missing the keys {missing!r}.")


def _check_bool(value: Any, field: str) -> None:
    if not isinstance(value, bool):
        raise _fail(field, "true or false", value)


def _check_int(value: Any, field: str, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(field, f"an integer from {low} to {high}", value)
    if not low <= value <= high:
        raise _fail(field, f"an integer from {low} to {high}", value)


def _check_number(value: Any, field: str, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(field, f"a number from {low} to {high}", value)
    if not math.isfinite(value) or not low <= value <= high:
        raise _fail(field, f"a number from {low} to {high}", value)


def _check_text(value: Any, field: str) -> None:
    if not isinstance(value, str) or len(value) > MAX_TEXT_CHARS:
        raise _fail(field, f"a string of at most {MAX_TEXT_CHARS} characters", value)


def _validate_webgpu(webgpu: Any) -> None:
    field = "['webgpu']"
    if webgpu is None:
        return
    _check_keys(
        webgpu,
        field,
        required={"adapter", "device", "fallback", "shaderF16"},
        optional={"limits", "vendor", "architecture", "error"},
    )
    for key in ("adapter", "device", "fallback", "shaderF16"):
        _check_bool(webgpu[key], f"{field}[{key!r}]")
    if webgpu["device"] and not webgpu["adapter"]:
        raise _fail(f"{field}['device']", "false when 'adapter' is false", True)
    for key in ("vendor", "architecture", "error"):
        if key in webgpu:
            _check_text(webgpu[key], f"{field}[{key!r}]")
    limits = webgpu.get("limits", {})
    if not isinstance(limits, dict) or len(limits) > MAX_LIMITS:
        expected = f"an object of at most {MAX_LIMITS} limits"
        raise _fail(f"{field}['limits']", expected, limits)
    for name, number in limits.items():
        if not (isinstance(name, str) and name.isalnum() and len(name) <= 64):
            raise _fail(f"{field}['limits']", "keyed by WebGPU limit names", name)
        _check_int(number, f"{field}['limits'][{name!r}]", 0, 2**53)


def validate_capabilities(capabilities: Any) -> dict[str, Any]:
    """
    Check the probe's capabilities JSON and return it unchanged.

    Raises ValueError naming the field for unknown keys, wrong types and
    out-of-range numbers. The shape is documented in docs/runtime.md.
    """
    _check_keys(
        capabilities,
        "",
        required={
            "webgpu",
            "crossOriginIsolated",
            "hardwareConcurrency",
            "deviceMemory",
            "storageQuota",
            "storageUsage",
            "consent",
        },
        optional=set(),
    )
    _validate_webgpu(capabilities["webgpu"])
    _check_bool(capabilities["crossOriginIsolated"], "['crossOriginIsolated']")
    _check_int(capabilities["hardwareConcurrency"], "['hardwareConcurrency']", 1, 4096)
    if capabilities["deviceMemory"] is not None:
        _check_number(capabilities["deviceMemory"], "['deviceMemory']", 0.125, 65536)
    for key in ("storageQuota", "storageUsage"):
        if capabilities[key] is not None:
            _check_int(capabilities[key], f"[{key!r}]", 0, 2**53)
    if capabilities["consent"] is not None:
        _check_bool(capabilities["consent"], "['consent']")
    return capabilities


def has_real_gpu(capabilities: dict[str, Any]) -> bool:
    """
    Tell whether the device has a hardware WebGPU adapter that created a
    device; a software (fallback) adapter such as SwiftShader does not count.
    """
    webgpu = capabilities["webgpu"]
    if webgpu is None:
        return False
    return webgpu["adapter"] and webgpu["device"] and not webgpu["fallback"]


def thread_count(capabilities: dict[str, Any]) -> int:
    """
    Return the WASM thread count: 1 without cross-origin isolation, because
    threads need SharedArrayBuffer.
    """
    if not capabilities["crossOriginIsolated"]:
        return 1
    limit = int(offload_settings.DEVICE_MAX_THREADS)
    return max(1, min(limit, capabilities["hardwareConcurrency"]))


def memory_budget(capabilities: dict[str, Any]) -> float:
    """
    Return the bytes one model may need at its peak on this device.
    """
    gib = capabilities["deviceMemory"]
    if gib is None:
        gib = float(offload_settings.UNKNOWN_DEVICE_MEMORY_GIB)
    return gib * GIB * float(offload_settings.DEVICE_MEMORY_FRACTION)


def free_storage(capabilities: dict[str, Any]) -> float:
    """
    Return the bytes the origin may still store, or infinity when unknown.
    """
    quota = capabilities["storageQuota"]
    if quota is None:
        return math.inf
    return max(0, quota - (capabilities["storageUsage"] or 0))


def shared_files(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """
    Return the manifest's files that every variant needs (tokenizer, configs),
    leaving out variant files that a store may also list under ``files``.
    """
    variant_files = {v["file"] for v in manifest.get("variants", {}).values()}
    return {
        path: record
        for path, record in manifest.get("files", {}).items()
        if path not in variant_files
    }


def download_bytes(manifest: dict[str, Any], variant: dict[str, Any]) -> int:
    """
    Return the bytes a device downloads for one variant and the shared files.
    """
    shared = sum(int(record["bytes"]) for record in shared_files(manifest).values())
    return shared + int(variant["bytes"])


def choose_variant(manifest: dict[str, Any], capabilities: dict[str, Any]) -> Fit:
    """
    Pick the variant of ``manifest`` that runs best on the described device.

    Only servable variants count. A variant fits when one of its backends
    runs here (webgpu needs a real, non-fallback adapter that created a
    device), its ``memory_bytes`` is within the memory budget (and within
    4 GiB on wasm), and its download fits the free storage. Among fitting
    variants webgpu wins over wasm, then the smaller download, then the
    reference variant. Consent is checked first; ``consent`` None (not asked
    yet) is treated as no consent.
    """
    validate_capabilities(capabilities)
    threads = thread_count(capabilities)
    if capabilities["consent"] is not True:
        return Fit(None, None, threads, NO_CONSENT)

    servable = {
        name: variant
        for name, variant in manifest.get("variants", {}).items()
        if variant.get("servable")
    }
    if not servable:
        return Fit(None, None, threads, NO_SERVABLE_VARIANT)

    backends = ["wasm"]
    if has_real_gpu(capabilities):
        backends.insert(0, "webgpu")
    budget = memory_budget(capabilities)
    storage = free_storage(capabilities)

    candidates = []
    failures = set()
    for name, variant in servable.items():
        usable = [b for b in backends if b in variant.get("backends", ())]
        if not usable:
            failures.add(NO_BACKEND)
            continue
        memory = int(variant["memory_bytes"])
        if usable[0] == "wasm" and memory > WASM_MEMORY_LIMIT_BYTES:
            failures.add(TOO_LITTLE_MEMORY)
            continue
        if memory > budget:
            failures.add(TOO_LITTLE_MEMORY)
            continue
        size = download_bytes(manifest, variant)
        if size > storage:
            failures.add(TOO_LITTLE_STORAGE)
            continue
        rank = (
            BROWSER_BACKENDS.index(usable[0]),
            size,
            not variant.get("reference", False),
            name,
        )
        candidates.append((rank, name, usable[0]))

    if candidates:
        _, name, backend = min(candidates)
        return Fit(name, backend, threads, FITS)
    for reason in (TOO_LITTLE_STORAGE, TOO_LITTLE_MEMORY, NO_BACKEND):
        if reason in failures:
            return Fit(None, None, threads, reason)
    return Fit(None, None, threads, NO_SERVABLE_VARIANT)
