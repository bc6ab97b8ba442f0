"""
Settings of the Daphne server for the notes demo's browser tests: the
browser tests' settings with the notes app's migrations, so the demo
prompts exist.
"""

from tests.browser.settings import *  # noqa: F403

MIGRATION_MODULES: dict[str, str | None] = {}
