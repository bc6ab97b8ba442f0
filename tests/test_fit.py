"""
Tests of django_offload.fit: capability validation and the device table.
"""

import copy

import pytest
from django.test import override_settings

from django_offload.fit import GIB, Fit, choose_variant, validate_capabilities

MB = 1024**2

MANIFEST = {
    "id": "smollm2-135m-instruct",
    "files": {
        "tokenizer.json": {"bytes": 2 * MB, "sha256": "a" * 64},
        "config.json": {"bytes": 1000, "sha256": "b" * 64},
    },
    "variants": {
        "fp32": {
            "file": "onnx/model.onnx",
            "bytes": 539 * MB,
            "memory_bytes": 1200 * MB,
            "reference": True,
            "backends": ["native", "wasm", "webgpu"],
            "servable": True,
        },
        "q4": {
            "file": "onnx/model_q4.onnx",
            "bytes": 111 * MB,
            "memory_bytes": 600 * MB,
            "backends": ["native", "webgpu"],
            "servable": True,
        },
        "q4f": {
            "file": "onnx/model_q4f.onnx",
            "bytes": 98 * MB,
            "memory_bytes": 3 * GIB,
            "backends": ["native", "wasm"],
            "servable": True,
        },
        "int8": {
            "file": "onnx/model_int8.onnx",
            "bytes": 165 * MB,
            "memory_bytes": 500 * MB,
            "backends": ["native", "wasm"],
            "servable": False,
        },
    },
}

REAL_GPU = {"adapter": True, "device": True, "fallback": False, "shaderF16": True}
SWIFTSHADER = {
    "adapter": True,
    "device": True,
    "fallback": True,
    "shaderF16": False,
    "limits": {"maxBufferSize": 268435456},
    "vendor": "google",
    "architecture": "swiftshader",
}
NO_DEVICE = {"adapter": True, "device": False, "fallback": False, "shaderF16": False}


def device(**changes):
    capabilities = {
        "webgpu": None,
        "crossOriginIsolated": True,
        "hardwareConcurrency": 8,
        "deviceMemory": 8,
        "storageQuota": 10 * GIB,
        "storageUsage": 0,
        "consent": True,
    }
    capabilities.update(changes)
    return capabilities


DEVICES = [
    # name, capabilities, expected Fit
    ("desktop gpu", device(webgpu=REAL_GPU), Fit("q4", "webgpu", 4, "fits")),
    ("desktop no gpu", device(), Fit("q4f", "wasm", 4, "fits")),
    ("swiftshader", device(webgpu=SWIFTSHADER), Fit("q4f", "wasm", 4, "fits")),
    ("gpu without device", device(webgpu=NO_DEVICE), Fit("q4f", "wasm", 4, "fits")),
    ("4 GiB laptop", device(deviceMemory=4), Fit("fp32", "wasm", 4, "fits")),
    (
        "2 GiB gpu phone",
        device(deviceMemory=2, webgpu=REAL_GPU),
        Fit("q4", "webgpu", 4, "fits"),
    ),
    ("2 GiB phone", device(deviceMemory=2), Fit(None, None, 4, "too-little-memory")),
    ("not isolated", device(crossOriginIsolated=False), Fit("q4f", "wasm", 1, "fits")),
    ("2 cores", device(hardwareConcurrency=2), Fit("q4f", "wasm", 2, "fits")),
    ("no consent", device(consent=False), Fit(None, None, 4, "no-consent")),
    ("not asked", device(consent=None), Fit(None, None, 4, "no-consent")),
    ("memory unknown", device(deviceMemory=None), Fit("fp32", "wasm", 4, "fits")),
    (
        "full disk",
        device(storageQuota=2 * GIB, storageUsage=2 * GIB - 50 * MB),
        Fit(None, None, 4, "too-little-storage"),
    ),
    (
        "little disk",
        device(storageQuota=GIB, storageUsage=GIB - 200 * MB, webgpu=REAL_GPU),
        Fit("q4", "webgpu", 4, "fits"),
    ),
    (
        "quota unknown",
        device(storageQuota=None, storageUsage=None),
        Fit("q4f", "wasm", 4, "fits"),
    ),
]


@pytest.mark.parametrize(
    ("capabilities", "expected"),
    [(caps, fit) for _, caps, fit in DEVICES],
    ids=[name for name, _, _ in DEVICES],
)
def test_choose_variant_device_table(capabilities, expected):
    assert choose_variant(MANIFEST, capabilities) == expected


def test_choose_variant_no_servable_variant():
    manifest = copy.deepcopy(MANIFEST)
    for variant in manifest["variants"].values():
        variant["servable"] = False
    fit = choose_variant(manifest, device())
    assert fit == Fit(None, None, 4, "no-servable-variant")


def test_choose_variant_no_backend():
    manifest = copy.deepcopy(MANIFEST)
    manifest["variants"] = {"q4": manifest["variants"]["q4"]}
    assert choose_variant(manifest, device()).reason == "no-backend"
    assert choose_variant(manifest, device(webgpu=SWIFTSHADER)).reason == "no-backend"


def test_choose_variant_wasm_memory_limit():
    manifest = copy.deepcopy(MANIFEST)
    manifest["variants"] = {"fp32": dict(MANIFEST["variants"]["fp32"])}
    manifest["variants"]["fp32"]["memory_bytes"] = 5 * GIB
    fit = choose_variant(manifest, device(deviceMemory=64))
    assert fit.reason == "too-little-memory"


def test_choose_variant_settings_change_budget():
    with override_settings(OFFLOAD={"DEVICE_MEMORY_FRACTION": 1.0}):
        assert choose_variant(MANIFEST, device(deviceMemory=2)).variant == "fp32"
    with override_settings(OFFLOAD={"DEVICE_MAX_THREADS": 2}):
        assert choose_variant(MANIFEST, device()).threads == 2


def test_fit_as_dict():
    fit = Fit("q4", "webgpu", 4, "fits")
    assert fit.as_dict() == {
        "variant": "q4",
        "backend": "webgpu",
        "threads": 4,
        "reason": "fits",
    }


INVALID = [
    # capabilities, words the error must contain
    ([], "capabilities must be an object"),
    (device(extra=1), "unknown keys ['extra']"),
    ({"webgpu": None}, "missing the keys"),
    (
        device(crossOriginIsolated="yes"),
        "['crossOriginIsolated'] must be true or false",
    ),
    (device(hardwareConcurrency=0), "['hardwareConcurrency'] must be an integer"),
    (device(hardwareConcurrency=2.5), "['hardwareConcurrency'] must be an integer"),
    (device(hardwareConcurrency=True), "['hardwareConcurrency'] must be an integer"),
    (device(deviceMemory=-1), "['deviceMemory'] must be a number"),
    (device(deviceMemory=float("nan")), "['deviceMemory'] must be a number"),
    (device(deviceMemory="8"), "['deviceMemory'] must be a number"),
    (device(storageQuota=-5), "['storageQuota'] must be an integer"),
    (device(storageUsage=1.5), "['storageUsage'] must be an integer"),
    (device(consent="granted"), "['consent'] must be true or false"),
    (device(webgpu=True), "['webgpu'] must be an object"),
    (device(webgpu={**REAL_GPU, "speed": 9}), "['webgpu'] has unknown keys ['speed']"),
    (device(webgpu={"adapter": True}), "['webgpu'] is missing the keys"),
    (device(webgpu={**REAL_GPU, "fallback": 0}), "['webgpu']['fallback'] must be true"),
    (
        device(webgpu={**REAL_GPU, "adapter": False}),
        "['webgpu']['device'] must be false when 'adapter' is false",
    ),
    (
        device(webgpu={**REAL_GPU, "limits": {"maxBufferSize": -1}}),
        "['webgpu']['limits']['maxBufferSize'] must be an integer",
    ),
    (
        device(webgpu={**REAL_GPU, "limits": {"max size": 1}}),
        "['webgpu']['limits'] must be keyed by WebGPU limit names",
    ),
    (
        device(webgpu={**REAL_GPU, "vendor": "x" * 300}),
        "['webgpu']['vendor'] must be a string",
    ),
]


@pytest.mark.parametrize(("capabilities", "words"), INVALID)
def test_validate_capabilities_invalid_input(capabilities, words):
    with pytest.raises(ValueError) as raised:
        validate_capabilities(capabilities)
    assert words in str(raised.value)


def test_validate_capabilities_keeps_input():
    capabilities = device(webgpu=SWIFTSHADER)
    before = copy.deepcopy(capabilities)
    assert validate_capabilities(capabilities) is capabilities
    assert capabilities == before


def test_choose_variant_variant_files_under_files():
    manifest = copy.deepcopy(MANIFEST)
    for variant in manifest["variants"].values():
        manifest["files"][variant["file"]] = {"bytes": variant["bytes"]}
    free = 200 * MB
    capabilities = device(storageQuota=GIB, storageUsage=GIB - free, webgpu=REAL_GPU)
    assert choose_variant(manifest, capabilities).variant == "q4"
