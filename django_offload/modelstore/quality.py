"""
The quality gate: each variant is compared with the model's fp32 reference
before it may be served.

Text generation: teacher-forced next-token agreement (the share of positions
where the variant's argmax equals the reference's) over a fixed set of texts,
plus greedy answers to three fixed tasks that must contain the expected
word. Lossless variants agree at 100 %; re-quantised dynamic int8 of
SmolLM2-135M was measured at about 50 % and answers the capital question
with nonsense, so the threshold sits well between.

Feature extraction: the cosine similarity of each fixed sentence's
embedding with the reference embedding; the minimum must reach the
threshold (per-channel int8 MiniLM was measured at 0.989 or more).

The gate runs the models through ``django_offload.engine`` so it judges the
same code path that serves them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from django_offload.modelstore.manifest import load_manifest, write_manifest

GATE_VERSION = 1
MIN_AGREEMENT = 0.9
MIN_COSINE = 0.98
MAX_NEW_TOKENS = 32

# Teacher-forced texts: chat turns and plain prose, about 200 positions.
AGREEMENT_CHATS = [
    [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "The capital of France is Paris."},
    ],
    [
        {"role": "user", "content": "Give me three tips for sleeping better."},
        {
            "role": "assistant",
            "content": "1. Keep a regular schedule. 2. Avoid screens before "
            "bed. 3. Keep your bedroom cool and dark.",
        },
    ],
    [
        {"role": "system", "content": "You answer in one short sentence."},
        {"role": "user", "content": "Why is the sky blue?"},
        {
            "role": "assistant",
            "content": "Sunlight scatters off air molecules, and blue light "
            "scatters the most.",
        },
    ],
]
AGREEMENT_TEXTS = [
    "The river runs past the old mill, where children used to watch the "
    "wheel turn slowly in the spring floods.",
    "def add(a, b):\n    return a + b\n",
]

# Greedy tasks: the answer must contain ``expect`` (case-insensitive).
TASKS = [
    {
        "name": "fact",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "expect": "paris",
    },
    {
        "name": "label",
        "messages": [
            {
                "role": "user",
                "content": "Classify the sentiment of this review as positive "
                "or negative. Answer with one word.\nReview: I loved this "
                "film, the acting was wonderful.",
            }
        ],
        "expect": "positive",
    },
    {
        "name": "instruction",
        "messages": [
            {
                "role": "user",
                "content": "Rewrite this sentence in the past tense: I walk to school.",
            }
        ],
        "expect": "walked",
    },
]

EMBEDDING_SENTENCES = [
    "The cat sits on the mat.",
    "A dog is playing in the park.",
    "How do I reset my password?",
    "I forgot my login details.",
    "Paris is the capital of France.",
    "The stock market fell sharply on Monday.",
    "Fresh bread smells wonderful in the morning.",
    "Neural networks learn from examples.",
]

Log = Callable[[str], None]


def agreement_ids(model: Any) -> list[list[int]]:
    """
    Return the token ids of the teacher-forced texts for ``model``.
    """
    sequences = [
        model.encode(model.render_chat(chat, add_generation_prompt=False))
        for chat in AGREEMENT_CHATS
    ]
    sequences += [model.encode(text) for text in AGREEMENT_TEXTS]
    return sequences


def text_gate(model_dir: Path, variant: str, reference: str = "fp32") -> dict:
    """
    Compare ``variant`` with ``reference`` and return the quality record.
    """
    from django_offload.engine import TextModel

    expected = TextModel.load(model_dir, reference, threads=0)
    sequences = agreement_ids(expected)
    reference_argmax = [expected.logits(ids).argmax(axis=1) for ids in sequences]
    reference_answers = [_answer(expected, task) for task in TASKS]
    del expected

    candidate = TextModel.load(model_dir, variant, threads=0)
    matches = positions = 0
    for ids, wanted in zip(sequences, reference_argmax, strict=True):
        got = candidate.logits(ids).argmax(axis=1)
        matches += int((got == wanted).sum())
        positions += len(ids)
    agreement = matches / positions

    tasks = {}
    for task, reference_answer in zip(TASKS, reference_answers, strict=True):
        answer = _answer(candidate, task)
        tasks[task["name"]] = {
            "passed": task["expect"] in answer.lower(),
            "matches_reference": answer == reference_answer,
        }
    passed = agreement >= MIN_AGREEMENT and all(t["passed"] for t in tasks.values())
    return {
        "passed": passed,
        "reference": variant == reference,
        "agreement": round(agreement, 4),
        "positions": positions,
        "tasks": tasks,
        "thresholds": {"agreement": MIN_AGREEMENT},
        "gate_version": GATE_VERSION,
    }


def _answer(model: Any, task: dict) -> str:
    from django_offload.engine import GenerationParams

    params = GenerationParams(max_new_tokens=MAX_NEW_TOKENS, temperature=0.0)
    return model.generate(task["messages"], params).text


def embedding_gate(model_dir: Path, variant: str, reference: str = "fp32") -> dict:
    """
    Compare the embeddings of ``variant`` with ``reference``; return the
    quality record.
    """
    from django_offload.engine import EmbeddingModel

    expected = EmbeddingModel.load(model_dir, reference).embed(EMBEDDING_SENTENCES)
    got = EmbeddingModel.load(model_dir, variant).embed(EMBEDDING_SENTENCES)
    cosines = (expected * got).sum(axis=1) / (
        np.linalg.norm(expected, axis=1) * np.linalg.norm(got, axis=1)
    )
    minimum = float(cosines.min())
    return {
        "passed": bool(minimum >= MIN_COSINE),
        "reference": variant == reference,
        "min_cosine": round(minimum, 6),
        "mean_cosine": round(float(cosines.mean()), 6),
        "sentences": len(EMBEDDING_SENTENCES),
        "thresholds": {"min_cosine": MIN_COSINE},
        "gate_version": GATE_VERSION,
    }


def reference_variant(manifest: dict) -> str:
    """
    Return the name of the manifest's reference variant.
    """
    return next(name for name, v in manifest["variants"].items() if v["reference"])


def gate_model(
    model_dir: Path,
    variants: list[str] | None = None,
    *,
    log: Log = print,
    only_missing: bool = False,
) -> dict:
    """
    Run the gate on ``variants`` (default: all) of the model in ``model_dir``,
    store each result and servable flag in its manifest, and return the
    updated manifest.

    The reference variant is gated too: its greedy tasks must pass for it to
    be served, and its agreement with itself is 1.0 by definition.
    """
    manifest = load_manifest(model_dir)
    reference = reference_variant(manifest)
    names = variants or list(manifest["variants"])
    for name in names:
        if name not in manifest["variants"]:
            raise ValueError(
                f"Model {manifest['id']!r} has no variant {name!r}; "
                f"it has {sorted(manifest['variants'])!r}."
            )
    extra = {
        key: value
        for key, value in (manifest["variants"][reference].get("quality") or {}).items()
        if key.endswith("_vs_pytorch")
    }
    for name in names:
        entry = manifest["variants"][name]
        quality = entry.get("quality") or {}
        if only_missing and quality.get("gate_version") == GATE_VERSION:
            continue
        log(f"Quality gate: {manifest['id']} {name} against {reference}")
        if manifest["task"] == "text-generation":
            result = text_gate(model_dir, name, reference)
        else:
            result = embedding_gate(model_dir, name, reference)
        if name == reference:
            result.update(extra)
        entry["quality"] = result
        entry["servable"] = result["passed"]
        log(f"  {describe(result)}")
        # Re-read before each write so a concurrent edit of another variant
        # is not lost, then store this variant's result.
        manifest = _store_result(model_dir, name, result)
    return manifest


def _store_result(model_dir: Path, name: str, result: dict) -> dict:
    manifest = load_manifest(model_dir)
    manifest["variants"][name]["quality"] = result
    manifest["variants"][name]["servable"] = result["passed"]
    write_manifest(model_dir, manifest)
    return manifest


def describe(quality: dict | None) -> str:
    """
    Return a one-line summary of a quality record for humans.
    """
    if not quality:
        return "not gated"
    verdict = "passed" if quality.get("passed") else "FAILED"
    parts = [verdict]
    if "agreement" in quality:
        parts.append(f"agreement {quality['agreement']:.1%}")
    if "min_cosine" in quality:
        parts.append(f"min cosine {quality['min_cosine']:.4f}")
    tasks = quality.get("tasks")
    if tasks:
        passed = sum(1 for task in tasks.values() if task["passed"])
        parts.append(f"tasks {passed}/{len(tasks)}")
    return ", ".join(parts)
