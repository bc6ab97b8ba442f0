"""
Settings for the test suite: the demo project's, with a throwaway SQLite file
unless DEMO_POSTGRES_DB selects PostgreSQL.
"""

from demo_project.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The notes app's data migration skips the demo prompts, so every test starts
# with empty prompt tables; tests/test_notes.py creates them when it needs
# them.
NOTES_DEMO_PROMPTS = False

# SQLite's in-memory test database uses shared-cache table locks, which fail
# at once ("database table is locked") when a consumer's thread and a
# request's thread write at the same moment. A file database waits for the
# lock instead, as the demo's database does.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    import os
    import tempfile

    # The file is thrown away after the run, so it need not survive a crash.
    DATABASES["default"]["OPTIONS"] = {"init_command": "PRAGMA synchronous=OFF;"}  # noqa: F405
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": os.path.join(
            tempfile.gettempdir(), f"django-offload-test-{os.getpid()}.sqlite3"
        )
    }
