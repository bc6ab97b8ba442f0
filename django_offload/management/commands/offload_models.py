"""
``manage.py offload_models``: build, list, verify, gate and import the models
of the model store (``OFFLOAD['MODEL_STORE']``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_offload.modelstore import (
    ManifestError,
    list_models,
    load_manifest,
    store_path,
)
from django_offload.modelstore.hashing import verify_files

BUILT_MODELS = ("smollm2-135m-instruct", "all-minilm-l6-v2")


class Command(BaseCommand):
    help = "Build, list, verify, gate or import the models served by django_offload."
    # The store may be missing or invalid: that is what this command repairs.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--store",
            help="Model store folder (default: OFFLOAD['MODEL_STORE']).",
        )
        actions = parser.add_subparsers(dest="action", required=True)

        build = actions.add_parser(
            "build", help="Build the bundled models (skips unchanged sources)."
        )
        build.add_argument(
            "--model",
            action="append",
            choices=BUILT_MODELS,
            help="Model to build; repeat for several (default: all).",
        )
        build.add_argument(
            "--force", action="store_true", help="Rebuild even when up to date."
        )
        build.add_argument(
            "--skip-gate",
            action="store_true",
            help="Do not run the quality gate after building.",
        )

        actions.add_parser("list", help="Show models, variants and quality.")

        verify = actions.add_parser(
            "verify", help="Check every file's size and SHA-256."
        )
        verify.add_argument("models", nargs="*", help="Model ids (default: all).")

        gate = actions.add_parser(
            "gate", help="Run the quality gate and store the results."
        )
        gate.add_argument("model", help="Model id.")
        gate.add_argument(
            "--variant",
            action="append",
            help="Variant to gate; repeat for several (default: all).",
        )

        adopt = actions.add_parser("import", help="Adopt a ready model folder.")
        adopt.add_argument("path", help="Folder in the transformers.js layout.")
        adopt.add_argument("--id", help="Model id (default: manifest or folder name).")
        adopt.add_argument(
            "--task",
            choices=["text-generation", "feature-extraction"],
            help="Task when the folder has no manifest (default: from config.json).",
        )
        adopt.add_argument(
            "--license",
            default="unknown",
            help="License recorded when the folder has no manifest.",
        )
        adopt.add_argument(
            "--force", action="store_true", help="Replace a model with the same id."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        store = store_path(options["store"])
        action = options["action"]
        if action == "build":
            self.build(store, options)
        elif action == "list":
            self.list(store)
        elif action == "verify":
            self.verify(store, options["models"])
        elif action == "gate":
            self.gate(store, options["model"], options["variant"])
        elif action == "import":
            self.adopt(store, options)

    def log(self, message: str) -> None:
        self.stdout.write(message)
        self.stdout.flush()

    def build(self, store: Path, options: dict[str, Any]) -> None:
        from django_offload.modelstore import build, quality

        try:
            store.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CommandError(
                f"Cannot create the model store {str(store)!r}: {exc}. Set "
                "OFFLOAD['MODEL_STORE'] to a writable folder or pass --store."
            ) from None
        builders = {
            "smollm2-135m-instruct": build.build_smollm2,
            "all-minilm-l6-v2": build.build_minilm,
        }
        try:
            with build.build_lock(store):
                for model_id in options["model"] or BUILT_MODELS:
                    builders[model_id](store, force=options["force"], log=self.log)
                    if not options["skip_gate"]:
                        quality.gate_model(
                            store / model_id, log=self.log, only_missing=True
                        )
        except build.StoreBusyError as exc:
            raise CommandError(str(exc)) from None
        except ImportError as exc:
            raise CommandError(
                f"Building needs the export packages ({exc}); install them "
                "with `pip install django-offload[export]`."
            ) from None
        self.log(self.style.SUCCESS(f"Model store {str(store)!r} is up to date."))

    def manifests(self, store: Path) -> list[dict[str, Any]]:
        if not store.is_dir():
            raise CommandError(
                f"The model store {str(store)!r} does not exist; run "
                "`manage.py offload_models build` or set OFFLOAD['MODEL_STORE']."
            )
        try:
            return list_models(store)
        except ManifestError as exc:
            raise CommandError(
                f"{exc}. Rebuild with `manage.py offload_models build --force` "
                "or fix the manifest."
            ) from None

    def list(self, store: Path) -> None:
        from django_offload.modelstore.quality import describe

        manifests = self.manifests(store)
        if not manifests:
            self.log(f"No models in {str(store)!r}; run `offload_models build`.")
            return
        for manifest in manifests:
            source = manifest["source"]
            self.log(
                f"{manifest['id']}  {manifest['task']}  {manifest['architecture']}  "
                f"license {manifest['license']}  source {source['package']} "
                f"{source['version']} ({source['sha256'][:12]})"
            )
            self.log(
                f"  {'variant':<8} {'file':<22} {'MB':>7} {'sha256':<12} "
                f"{'mem MB':>7} {'backends':<19} {'servable':<8} quality"
            )
            for name, variant in manifest["variants"].items():
                label = f"{name}*" if variant["reference"] else name
                self.log(
                    f"  {label:<8} {variant['file']:<22} "
                    f"{variant['bytes'] / 1e6:>7.1f} {variant['sha256'][:12]:<12} "
                    f"{variant['memory_bytes'] / 1e6:>7.0f} "
                    f"{','.join(variant['backends']):<19} "
                    f"{'yes' if variant['servable'] else 'no':<8} "
                    f"{describe(variant.get('quality'))}"
                )
        self.log("  (* reference variant)")

    def verify(self, store: Path, model_ids: list[str]) -> None:
        manifests = {m["id"]: m for m in self.manifests(store)}
        unknown = [model_id for model_id in model_ids if model_id not in manifests]
        if unknown:
            raise CommandError(
                f"No model {unknown!r} in {str(store)!r}; the store has "
                f"{sorted(manifests)!r}."
            )
        problems = []
        for model_id in model_ids or sorted(manifests):
            manifest = manifests[model_id]
            self.log(f"Verifying {model_id} ({len(manifest['files'])} files)")
            for problem in verify_files(store / model_id, manifest["files"]):
                problems.append(f"{model_id}/{problem}")
        if problems:
            raise CommandError(
                "Model files do not match their manifests:\n  "
                + "\n  ".join(problems)
                + "\nRebuild with `manage.py offload_models build --force` "
                "or re-import the model."
            )
        self.log(self.style.SUCCESS("All files match their manifests."))

    def gate(self, store: Path, model_id: str, variants: list[str] | None) -> None:
        from django_offload.modelstore.quality import gate_model

        model_dir = store / model_id
        try:
            load_manifest(model_dir)
            gate_model(model_dir, variants, log=self.log)
        except (ManifestError, ValueError) as exc:
            raise CommandError(str(exc)) from None

    def adopt(self, store: Path, options: dict[str, Any]) -> None:
        from django_offload.modelstore.build import StoreBusyError, build_lock
        from django_offload.modelstore.importer import ModelImportError, import_model

        store.mkdir(parents=True, exist_ok=True)
        try:
            with build_lock(store):
                import_model(
                    Path(options["path"]),
                    store,
                    model_id=options["id"],
                    task=options["task"],
                    license=options["license"],
                    force=options["force"],
                    log=self.log,
                )
        except (ManifestError, ModelImportError, StoreBusyError) as exc:
            raise CommandError(str(exc)) from None
