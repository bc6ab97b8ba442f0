"""
Settings of the Daphne server that the browser tests start: the test
settings, with the test-only pages of tests/browser/urls.py and the
runtime's debug logging in the page.
"""

from tests.settings import *  # noqa: F403
from tests.settings import OFFLOAD

ROOT_URLCONF = "tests.browser.urls"
OFFLOAD = {**OFFLOAD, "LOG_LEVEL": "debug"}
