"""Fixtures of the web tests; they live in web_site.py (imported by name from the tests)."""

from web_site import browser, prepared, site, tablet

__all__ = ["browser", "prepared", "site", "tablet"]
