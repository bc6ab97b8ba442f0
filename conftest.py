# The repository root on sys.path lets the tests import demo_project.
