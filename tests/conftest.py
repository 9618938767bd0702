"""Test configuration."""

# a script run as a subprocess by test_crash_resume.py, not a test module
collect_ignore = ["crash_worker.py"]
