"""Fixtures of the browser tests (``tests/web_kit.py`` holds them)."""

from web_kit import browser, smtp  # noqa: F401 (fixtures)
