"""
Tests of the model manifest, fit and model-file views against a small store
built in a temporary folder.
"""

import hashlib
import json
import logging

import pytest
from django.test import override_settings

MODEL_ID = "tiny-model"
WEIGHTS = bytes(range(256)) * 12  # 3072 bytes
TOKENIZER = b'{"model": {"type": "BPE"}}'


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def write_store(root, manifest_changes=None):
    model_dir = root / MODEL_ID
    (model_dir / "onnx").mkdir(parents=True)
    (model_dir / "onnx" / "model.onnx").write_bytes(WEIGHTS)
    (model_dir / "onnx" / "model_int8.onnx").write_bytes(WEIGHTS[:100])
    (model_dir / "tokenizer.json").write_bytes(TOKENIZER)
    (model_dir / "notes.txt").write_text("not listed")
    manifest = {
        "format": 1,
        "id": MODEL_ID,
        "task": "text-generation",
        "architecture": "llama",
        "context_length": 2048,
        "license": "Apache-2.0",
        "config": {"num_layers": 2, "eos_token_ids": [2]},
        "files": {
            "tokenizer.json": {"bytes": len(TOKENIZER), "sha256": sha256(TOKENIZER)}
        },
        "variants": {
            "fp32": {
                "file": "onnx/model.onnx",
                "dtype": "fp32",
                "bytes": len(WEIGHTS),
                "sha256": sha256(WEIGHTS),
                "memory_bytes": 10_000_000,
                "reference": True,
                "backends": ["native", "wasm", "webgpu"],
                "servable": True,
            },
            "int8": {
                "file": "onnx/model_int8.onnx",
                "dtype": "int8",
                "bytes": 100,
                "sha256": sha256(WEIGHTS[:100]),
                "memory_bytes": 5_000_000,
                "backends": ["native", "wasm"],
                "servable": False,
            },
        },
    }
    manifest.update(manifest_changes or {})
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    return model_dir


@pytest.fixture
def store(tmp_path):
    root = tmp_path / "store"
    write_store(root)
    with override_settings(OFFLOAD={"MODEL_STORE": str(root)}):
        yield root


FILE_URL = f"/offload/models/{MODEL_ID}/onnx/model.onnx"


def test_manifest_lists_servable_variants(client, store):
    response = client.get("/offload/manifest/")
    assert response.status_code == 200
    models = response.json()["models"]
    assert [m["id"] for m in models] == [MODEL_ID]
    model = models[0]
    assert model["baseUrl"] == f"/offload/models/{MODEL_ID}/"
    assert list(model["variants"]) == ["fp32"]
    fp32 = model["variants"]["fp32"]
    assert fp32["url"] == FILE_URL
    assert fp32["bytes"] == len(WEIGHTS)
    assert fp32["sha256"] == sha256(WEIGHTS)
    assert fp32["memory_bytes"] == 10_000_000
    assert fp32["backends"] == ["native", "wasm", "webgpu"]
    assert fp32["reference"] is True
    assert model["files"]["tokenizer.json"]["url"].endswith("/tokenizer.json")
    assert model["config"] == {"num_layers": 2, "eos_token_ids": [2]}


def test_manifest_skips_invalid_model(client, store, caplog):
    write_store(store.parent / "other", {"id": "wrong"})
    (store.parent / "other" / MODEL_ID).rename(store / "broken")
    with caplog.at_level(logging.WARNING, logger="django_offload.views"):
        response = client.get("/offload/manifest/")
    assert [m["id"] for m in response.json()["models"]] == [MODEL_ID]
    assert "'id' is 'wrong' but the folder is 'broken'" in caplog.text


def test_manifest_empty_store(client, tmp_path):
    with override_settings(OFFLOAD={"MODEL_STORE": str(tmp_path / "none")}):
        response = client.get("/offload/manifest/")
    assert response.json() == {"format": 1, "models": []}


def test_model_file_full_download(client, store):
    response = client.get(FILE_URL)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == WEIGHTS
    assert response["Content-Length"] == str(len(WEIGHTS))
    assert response["ETag"] == f'"{sha256(WEIGHTS)}"'
    assert response["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Type"] == "application/octet-stream"


def test_model_file_json_content_type(client, store):
    response = client.get(f"/offload/models/{MODEL_ID}/tokenizer.json")
    assert response["Content-Type"] == "application/json"
    assert b"".join(response.streaming_content) == TOKENIZER


RANGES = [
    # Range header, expected Content-Range, expected body slice
    ("bytes=10-19", "bytes 10-19/3072", slice(10, 20)),
    ("bytes=3000-", "bytes 3000-3071/3072", slice(3000, None)),
    ("bytes=-5", "bytes 3067-3071/3072", slice(3067, None)),
    ("bytes=3070-9999", "bytes 3070-3071/3072", slice(3070, None)),
    ("bytes=0-0", "bytes 0-0/3072", slice(0, 1)),
]


@pytest.mark.parametrize(("header", "content_range", "part"), RANGES)
def test_model_file_range(client, store, header, content_range, part):
    response = client.get(FILE_URL, HTTP_RANGE=header)
    assert response.status_code == 206
    assert response["Content-Range"] == content_range
    body = b"".join(response.streaming_content)
    assert body == WEIGHTS[part]
    assert response["Content-Length"] == str(len(body))


@pytest.mark.parametrize("header", ["bytes=3072-", "bytes=5000-6000", "bytes=-0"])
def test_model_file_range_not_satisfiable(client, store, header):
    response = client.get(FILE_URL, HTTP_RANGE=header)
    assert response.status_code == 416
    assert response["Content-Range"] == "bytes */3072"


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "items=0-5", "bytes=9-2"])
def test_model_file_range_ignored(client, store, header):
    response = client.get(FILE_URL, HTTP_RANGE=header)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == WEIGHTS


def test_model_file_if_range_mismatch_sends_whole_file(client, store):
    response = client.get(FILE_URL, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE='"old"')
    assert response.status_code == 200
    etag = f'"{sha256(WEIGHTS)}"'
    response = client.get(FILE_URL, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE=etag)
    assert response.status_code == 206


def test_model_file_if_none_match(client, store):
    etag = f'"{sha256(WEIGHTS)}"'
    response = client.get(FILE_URL, HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 304
    assert response["ETag"] == etag


def test_model_file_head(client, store):
    response = client.head(FILE_URL)
    assert response.status_code == 200
    assert response["Content-Length"] == str(len(WEIGHTS))


def test_model_file_post_rejected(client, store):
    assert client.post(FILE_URL).status_code == 405


NOT_SERVED = [
    f"/offload/models/{MODEL_ID}/manifest.json",
    f"/offload/models/{MODEL_ID}/notes.txt",
    f"/offload/models/{MODEL_ID}/onnx/model_int8.onnx",
    f"/offload/models/{MODEL_ID}/onnx/../tokenizer.json",
    f"/offload/models/{MODEL_ID}/onnx/%2e%2e/tokenizer.json",
    f"/offload/models/{MODEL_ID}/%2e%2e/{MODEL_ID}/tokenizer.json",
    f"/offload/models/{MODEL_ID}//etc/passwd",
    "/offload/models/..%2fstore/tokenizer.json",
    "/offload/models/Tiny-Model/tokenizer.json",
    "/offload/models/missing/tokenizer.json",
]


@pytest.mark.parametrize("url", NOT_SERVED)
def test_model_file_not_listed_is_404(client, store, url):
    assert client.get(url).status_code == 404


def test_model_file_size_mismatch_is_404(client, store, caplog):
    (store / MODEL_ID / "onnx" / "model.onnx").write_bytes(WEIGHTS[:-1])
    with caplog.at_level(logging.WARNING, logger="django_offload.views"):
        assert client.get(FILE_URL).status_code == 404
    assert "has 3071 bytes but its manifest lists 3072" in caplog.text


BAD_MANIFESTS = [
    ({"format": 2}, "'format' must be 1"),
    ({"files": {"../x": {"bytes": 1, "sha256": "a" * 64}}}, "relative POSIX path"),
    ({"files": {"/etc/passwd": {"bytes": 1, "sha256": "a" * 64}}}, "relative POSIX"),
    ({"files": {"x": {"bytes": -1, "sha256": "a" * 64}}}, "['bytes'] must be"),
    ({"files": {"x": {"bytes": 1, "sha256": "ABC"}}}, "['sha256'] must be"),
    ({"variants": {}}, "'variants' must be a non-empty object"),
]


@pytest.mark.parametrize(("changes", "words"), BAD_MANIFESTS)
def test_model_file_invalid_manifest_is_404(client, tmp_path, caplog, changes, words):
    write_store(tmp_path, changes)
    with override_settings(OFFLOAD={"MODEL_STORE": str(tmp_path)}):
        with caplog.at_level(logging.WARNING, logger="django_offload.views"):
            response = client.get(f"/offload/models/{MODEL_ID}/tokenizer.json")
    assert response.status_code == 404
    assert words in caplog.text


def capabilities(**changes):
    value = {
        "webgpu": None,
        "crossOriginIsolated": False,
        "hardwareConcurrency": 2,
        "deviceMemory": 8,
        "storageQuota": 10**10,
        "storageUsage": 0,
        "consent": True,
    }
    value.update(changes)
    return value


def test_fit_view_returns_fit_per_model(client, store):
    response = client.post(
        "/offload/fit/", capabilities(), content_type="application/json"
    )
    assert response.status_code == 200
    assert response.json() == {
        "models": {
            MODEL_ID: {
                "variant": "fp32",
                "backend": "wasm",
                "threads": 1,
                "reason": "fits",
            }
        }
    }


def test_fit_view_invalid_capabilities(client, store):
    response = client.post(
        "/offload/fit/",
        capabilities(deviceMemory="lots"),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "['deviceMemory'] must be a number" in response.json()["error"]


def test_fit_view_invalid_json(client, store):
    response = client.post("/offload/fit/", "{", content_type="application/json")
    assert response.status_code == 400
    assert "error" in response.json()


def test_fit_view_large_body(client, store):
    body = json.dumps(capabilities()) + " " * 20000
    response = client.post("/offload/fit/", body, content_type="application/json")
    assert response.status_code == 400
    assert "larger than 16384 bytes" in response.json()["error"]


def test_fit_view_get_rejected(client, store):
    assert client.get("/offload/fit/").status_code == 405


def test_variant_files_listed_under_files(client, tmp_path):
    model_dir = write_store(tmp_path)
    manifest = json.loads((model_dir / "manifest.json").read_text())
    for variant in manifest["variants"].values():
        manifest["files"][variant["file"]] = {
            "bytes": variant["bytes"],
            "sha256": variant["sha256"],
        }
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    with override_settings(OFFLOAD={"MODEL_STORE": str(tmp_path)}):
        described = client.get("/offload/manifest/").json()["models"][0]
        int8 = client.get(f"/offload/models/{MODEL_ID}/onnx/model_int8.onnx")
        fp32 = client.get(FILE_URL)
    assert list(described["files"]) == ["tokenizer.json"]
    assert int8.status_code == 404
    assert fp32.status_code == 200
