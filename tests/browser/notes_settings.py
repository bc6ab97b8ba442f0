"""
Settings of the Daphne server for the notes demo's browser tests. The notes
app's data migration creates the demo prompts here. Metrics groups show from
one device on, because each test has one device per group.
"""

from tests.browser.settings import *  # noqa: F403
from tests.browser.settings import OFFLOAD

NOTES_DEMO_PROMPTS = True
OFFLOAD = {**OFFLOAD, "MIN_GROUP_DEVICES": 1}
