"""Helpers shared by the labeler tests (no tests here)."""
import contextlib
import io
import re
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench.common import free_port
from tests.helpers.common import add_sketches, built_once

TRAIN_OPTIONS = {"alpha": 0.25, "views": 1, "epochs": 10}
XSS = "<img src=x onerror=alert(1)>"


# The buttons and fields on a page a finger would miss: under 44 px, and
# not in a label that is bigger (a tap on the label works the control).
# Statements: wrap them in a function for Playwright.
SMALL_CONTROLS_JS = """
const hit = (control) => [control, control.closest("label") || control]
  .map((element) => element.getBoundingClientRect())
  .reduce((a, b) => ({width: Math.max(a.width, b.width), height: Math.max(a.height, b.height)}));
return [...document.querySelectorAll("button, input:not([type=hidden]), select, textarea")]
  .filter((control) => control.getBoundingClientRect().width)
  .map((control) => [control, hit(control)])
  .filter(([, box]) => Math.min(box.width, box.height) < 44)
  .map(([control, box]) => `${control.id || control.name || control.textContent.trim()}: `
                           + `${Math.round(box.width)}x${Math.round(box.height)}`);
"""


def every_page(image_id):
    """A path of each of the labeler's pages (`image_id`: one for its own page)."""
    return ("/", "/images", "/review", "/capture", "/retrain", "/export", "/classes",
            f"/images/{image_id}")


def client_for(path, **kwargs):
    from fastapi.testclient import TestClient
    from labeler.app import create_app
    kwargs.setdefault("train_options", TRAIN_OPTIONS)
    # The address the labeler is bound to: it answers no other host name.
    return TestClient(create_app(path, **kwargs), base_url="http://127.0.0.1")


def token(client, page="/images"):
    """The CSRF token of a page's forms (and the cookie that goes with it)."""
    response = client.get(page)
    assert response.status_code == 200, response.text
    return re.search(r'name="csrf" value="([^"]+)"', response.text).group(1)


def post(client, url, data, files=None, follow=True, **kwargs):
    data = {"csrf": token(client), **data}
    return client.post(url, data=data, files=files, follow_redirects=follow, **kwargs)


def tile_ids(html):
    return [int(i) for i in re.findall(r'<li class="tile[^"]*" data-id="(\d+)"', html)]


def labeled(store, image_ids):
    rows = store.db.execute(
        f"SELECT l.image_id, c.name FROM labels l JOIN classes c ON c.id = l.class_id"
        f" WHERE l.image_id IN ({','.join('?' * len(image_ids))})", list(image_ids)).fetchall()
    return dict(rows)


def png_bytes(shape="circle", seed=0, size=96):
    from model.sketches import draw
    out = io.BytesIO()
    draw(shape, np.random.default_rng(seed), size=size).save(out, format="PNG")
    return out.getvalue()


def seeded(store):
    """8 train and 2 test sketches of each shape, labeled; returns (train ids, test ids)."""
    return add_sketches(store, 8, seed=1), add_sketches(store, 2, seed=7, split="test")


@contextlib.contextmanager
def seeded_store(path):
    """(path, store, train ids, test ids) of a fresh database with the seeded sketches."""
    from db import Store
    store = Store(path)
    train, test = seeded(store)
    try:
        yield path, store, train, test
    finally:
        store.close()


@built_once
def trained_template():
    """A database with the seeded sketches and one live version trained through
    the labeler's own job (real alpha 0.25 backbone)."""
    from db import Store
    from service.jobs import Jobs
    folder = Path(tempfile.mkdtemp(prefix="sketchlab-labeler-"))
    store = Store(folder / "trained.db")
    seeded(store)
    jobs = Jobs(store, TRAIN_OPTIONS)
    assert jobs.retrain()
    jobs.wait()
    assert jobs.status["state"] == "done", jobs.status
    store.close()
    return folder / "trained.db"


def wait_for_job(client, timeout=300):
    """Poll /retrain/status until the job ends; returns (final status, states seen)."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get("/retrain/status").json()
        seen.append((status["state"], status["stage"], status["done"], status["total"]))
        if status["state"] != "running":
            return status, seen
        time.sleep(0.2)
    raise AssertionError(f"job still running after {timeout} s: {seen[-3:]}")


@contextlib.contextmanager
def served(app):
    """The app on real HTTP (uvicorn in a thread); yields its base URL."""
    import uvicorn
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120  # generous: only there so that a failure does not hang
    while not server.started:
        if time.monotonic() > deadline:
            raise AssertionError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
