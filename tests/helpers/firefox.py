"""Debian's Firefox ESR, driven over Marionette (marionette-driver from PyPI),
for the tests marked `browser` that prove the apps outside Chromium."""
import contextlib
import os
import subprocess
import time

import pytest

from bench.common import free_port
from tests.helpers.common import artifact

FIREFOX = "/usr/bin/firefox-esr"
XVFB = "/usr/bin/Xvfb"
TIMEOUT_S = 60


def require_firefox():
    """Skip (with the reason) without Firefox and Xvfb, except under CI where
    they must be there."""
    for path, package in ((FIREFOX, "firefox-esr"), (XVFB, "xvfb")):
        if not os.path.exists(path):
            if os.environ.get("CI"):
                pytest.fail(f"{path} is missing but CI is set: .ci/run installs it.")
            pytest.skip(f"{path} is not installed (apt-get install {package}); "
                        "set CI=1 to make this a failure.")


@contextlib.contextmanager
def virtual_display(width, height):
    """An Xvfb display; yields its name (":N"): Firefox draws and composites
    the page as on a desktop without a GPU (headless Firefox has no WebGL
    here, and renders differently)."""
    read, write = os.pipe()
    server = subprocess.Popen([XVFB, "-displayfd", str(write), "-screen", "0",
                               f"{width}x{height}x24", "-nolisten", "tcp"], pass_fds=[write],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as numbers:
        number = numbers.readline().strip()
    try:
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(10)


# Firefox's window is at least 500 px wide. A narrower viewport (a phone's
# 390 px) is had by zooming every page by 4/3 (its default zoom: a page
# zoomed by itself would lose it on the next navigation) in a wider window.
NARROW_ZOOM = 4 / 3
MIN_WINDOW_WIDTH = 500
SET_DEFAULT_ZOOM_JS = """
const [zoom, done] = arguments;
Cc["@mozilla.org/content-pref/service;1"].getService(Ci.nsIContentPrefService2)
  .setGlobal("browser.content.full-zoom", zoom, null,
             {handleCompletion: () => done(true), handleError: (error) => done(String(error))});
"""
VIEWPORT_JS = "return [window.innerWidth, window.innerHeight]"


@contextlib.contextmanager
def firefox(width=1280, height=1000):
    """A Firefox session on a virtual display whose pages are `width` x
    `height` CSS pixels, as `window.innerWidth` and `innerHeight` say."""
    require_firefox()
    from marionette_driver.marionette import Marionette
    zoom = NARROW_ZOOM if width < MIN_WINDOW_WIDTH else 1
    with virtual_display(round(width * zoom) + 100, round(height * zoom) + 200) as display:
        # Marionette starts Firefox with this process's environment.
        saved = os.environ.get("DISPLAY")
        os.environ["DISPLAY"] = display
        try:
            # With touch events on, as on a phone or a touch screen.
            driver = Marionette(host="127.0.0.1", port=free_port(), bin=FIREFOX,
                                startup_timeout=120, gecko_log=str(artifact("gecko.log")),
                                prefs={"dom.w3c_touch_events.enabled": 1})
            # Files go to Gradio's hidden file inputs, as a user's file dialog
            # would fill them (the WebDriver default; Marionette's is strict).
            driver.start_session({"strictFileInteractability": False})
        finally:
            if saved is None:
                os.environ.pop("DISPLAY")
            else:
                os.environ["DISPLAY"] = saved
        profile = driver.instance.profile
        try:
            driver.timeout.implicit = 0
            # The window's frame and toolbars come on top of the page.
            inner = driver.execute_script(VIEWPORT_JS)
            outer = driver.window_rect
            driver.set_window_rect(
                width=round(width * zoom) + outer["width"] - inner[0],
                height=round(height * zoom) + outer["height"] - inner[1])
            if zoom != 1:
                with driver.using_context("chrome"):
                    assert driver.execute_async_script(SET_DEFAULT_ZOOM_JS,
                                                       script_args=[zoom]) is True
            # The zoom reaches the open page a moment after the pref is stored.
            wait_for(driver, lambda d: d.execute_script(VIEWPORT_JS) == [width, height],
                     f"viewport of {width}x{height} CSS pixels", timeout=10)
            yield driver
        finally:
            driver.cleanup()
            profile.cleanup()
            # Removed now: mozprofile would otherwise remove it again when the
            # interpreter exits, and fail noisily then.
            profile.restore = False


def css(driver, selector):
    from marionette_driver.by import By
    return driver.find_elements(By.CSS_SELECTOR, selector)


def wait_for(driver, check, what, timeout=TIMEOUT_S):
    """Poll `check(driver)` until it is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check(driver)
        except Exception:  # an element replaced while it was read: try again
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"Firefox: still no {what} after {timeout} s "
                                 f"on {driver.get_url()}")
        time.sleep(0.2)


def text_of(driver, selector):
    """The visible text of the first element matching `selector`, or ''."""
    found = css(driver, selector)
    return found[0].text if found else ""


def stroke(driver, points, pointer="mouse"):
    """One stroke through `points` (viewport CSS pixels), with a mouse or a
    finger (`pointer="touch"`)."""
    sequence = driver.actions.sequence("pointer", "pen", {"pointerType": pointer})
    x, y = points[0]
    sequence.pointer_move(int(x), int(y)).pointer_down()
    for x, y in points[1:]:
        sequence.pointer_move(int(x), int(y), duration=60)
    sequence.pointer_up().perform()
    driver.actions.release()


def in_view(driver, element):
    """Scroll `element` to the middle of the window; its rect in viewport
    CSS pixels (x, y, width, height)."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})",
                          script_args=[element])
    box = element.rect
    scroll_y = driver.execute_script("return window.scrollY")
    return box["x"], box["y"] - scroll_y, box["width"], box["height"]


def tap(driver, element, pointer="mouse"):
    """Click `element`, or (`pointer="touch"`) tap its middle with a finger."""
    if pointer == "mouse":
        element.click()
        return
    x, y, width, height = in_view(driver, element)
    finger = driver.actions.sequence("pointer", "finger", {"pointerType": "touch"})
    finger.pointer_move(int(x + width / 2), int(y + height / 2)).pointer_down().pointer_up()
    finger.perform()
    driver.actions.release()
