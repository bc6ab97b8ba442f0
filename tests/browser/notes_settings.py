"""
Settings of the Daphne server for the notes demo's browser tests: the
browser tests' settings with the demo prompts created by the notes app's
data migration, and metrics groups shown from one device on, because the
tests have one device per group.
"""

from tests.browser.settings import *  # noqa: F403
from tests.browser.settings import OFFLOAD

NOTES_DEMO_PROMPTS = True
OFFLOAD = {**OFFLOAD, "MIN_GROUP_DEVICES": 1}
