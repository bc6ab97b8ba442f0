"""
Settings for the test suite: the demo project's, with a throwaway SQLite file
unless DEMO_POSTGRES_DB selects PostgreSQL.
"""

from demo_project.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The notes app's tables are created without its migrations, so the demo
# prompts of its data migration stay out of the test database and every test
# starts with empty prompt tables. tests/test_notes.py creates the demo
# prompts with the migration's own function.
MIGRATION_MODULES = {"notes": None}
