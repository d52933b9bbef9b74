"""Debian's Chromium, driven by Playwright, for the tests marked `browser`."""
import os

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def require_chromium():
    """Skip (with the reason) without Chromium, except under CI where it must be there."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing but CI is set: .ci/run installs it.")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium); "
                    "set CI=1 to make this a failure.")


def open_browser(playwright, *extra):
    """A headless Chromium; `extra` are more command-line switches."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=CHROMIUM_ARGS + list(extra))
