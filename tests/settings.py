"""
Settings for the test suite: the demo project's, with a throwaway SQLite file
unless DEMO_POSTGRES_DB selects PostgreSQL.
"""

from demo_project.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
