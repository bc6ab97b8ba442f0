"""
Settings of the Daphne server for the notes demo's browser tests: the
browser tests' settings with the demo prompts created by the notes app's
data migration.
"""

from tests.browser.settings import *  # noqa: F403

NOTES_DEMO_PROMPTS = True
