import mimetypes

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OffloadConfig(AppConfig):
    name = "django_offload"
    verbose_name = _("Offload")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_offload import checks  # noqa: F401  (registers the checks)

        # Browsers reject ES modules and WebAssembly served with other types,
        # and some systems' mime.types know neither extension.
        mimetypes.add_type("text/javascript", ".mjs")
        mimetypes.add_type("application/wasm", ".wasm")
