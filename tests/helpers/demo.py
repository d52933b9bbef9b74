"""Helpers shared by the demo tests (no tests here).

The starter database is trained once per test process (real alpha 0.25
backbone, real SQLite file) and every test gets its own copy of the file.
"""
import contextlib
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from bench.common import free_port
from tests.helpers.common import ROOT, TEST_ALPHA, built_once, copy_db


@built_once
def starter_template():
    """Path of a database seeded and trained by service.starter."""
    from db import Store
    from service.starter import ensure_first_model
    folder = Path(tempfile.mkdtemp(prefix="sketchlab-starter-"))
    store = Store(folder / "starter.db")
    ensure_first_model(store, alpha=TEST_ALPHA)
    store.close()
    return folder / "starter.db"


@contextlib.contextmanager
def configured(**settings):
    """The module-global `demo_handlers.app` configured with `settings`, and put back to
    its defaults afterwards whatever happened, so that no test leaves it
    pointing at its database for the next one."""
    import demo_handlers as handlers
    handlers.app.configure(**settings)
    try:
        yield handlers.app
    finally:
        handlers.app.configure()


@contextlib.contextmanager
def serving(db_path, **settings):
    """`configured` on `db_path`, with its live model loaded."""
    import demo_handlers as handlers
    with configured(db=db_path, alpha=TEST_ALPHA, **settings) as app:
        app.model.start(wait=True)
        assert app.model.phase == "ready", handlers.status()
        yield app


@contextlib.contextmanager
def served_copy(folder):
    """The module-level `demo`, launched in this process on a fresh copy of the
    starter database: (url, app)."""
    with serving(copy_db(starter_template(), Path(folder) / "demo.db")) as app:
        with launched() as url:
            yield url, app


def offline_downloads(monkeypatch):
    """Keras downloads fail as they do offline; weights already cached still load."""
    from keras.src.utils import file_utils
    from model.backbone import keras_models_dir
    real_get_file = file_utils.get_file

    def get_file(fname=None, origin=None, *args, **kwargs):
        if fname and os.path.exists(os.path.join(keras_models_dir(), fname)):
            return real_get_file(fname, origin, *args, **kwargs)
        raise Exception(f"URL fetch failure on {origin}: offline (test)")
    monkeypatch.setattr(file_utils, "get_file", get_file)


@contextlib.contextmanager
def launched(auth=None):
    """The module-level `demo` launched on 127.0.0.1 (in this process); yields its URL."""
    import demo
    demo.demo.launch(**demo.launch_options("127.0.0.1", free_port(), auth=auth))
    try:
        yield demo.demo.local_url
    finally:
        demo.demo.close()


def client_sketch(path):
    """A drawing's file as /classify_sketch takes it from gradio_client."""
    from gradio_client import handle_file
    return handle_file(str(path))


def draw_shape(shape, seed, size=256):
    from model.sketches import draw
    return draw(shape, np.random.default_rng(seed), size=size)


def draw_cross(rng, size=256):
    """An 'X' with jitter: a class the starter set does not have."""
    image = Image.new("RGB", (size, size), "white")
    pen = ImageDraw.Draw(image)
    c = rng.uniform(0.4, 0.6, size=2) * size
    r = rng.uniform(0.22, 0.38) * size
    width = int(rng.integers(3, 9))
    for angle in (math.pi / 4, 3 * math.pi / 4):
        angle += rng.uniform(-0.15, 0.15)
        dx, dy = r * math.cos(angle), r * math.sin(angle)
        pen.line([(c[0] - dx, c[1] - dy), (c[0] + dx, c[1] + dy)], fill="black", width=width)
    return image


def predict_when_ready(client, *args, timeout=180, **kwargs):
    """client.predict, retried while the demo says its model is still being prepared."""
    from gradio_client.exceptions import AppError
    deadline = time.monotonic() + timeout
    while True:
        try:
            return client.predict(*args, **kwargs)
        except AppError as error:
            if "still being trained" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(1)


def top_label(value):
    """The top class of a gr.Label value as gradio_client returns it."""
    return value["label"]


class DemoProcess:
    """`python demo.py ...` in a subprocess, with its output collected."""

    def __init__(self, *args, env=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = tempfile.NamedTemporaryFile("w+", prefix="demo-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [sys.executable, "demo.py", "--port", str(self.port), *args], cwd=ROOT,
            stdout=self.log, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})

    def output(self):
        return Path(self.log.name).read_text(errors="replace")

    def wait_for(self, text, timeout=180):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.output()
            if text in out:
                return out
            if self.proc.poll() is not None:
                raise AssertionError(f"demo.py exited {self.proc.returncode}:\n{out[-3000:]}")
            time.sleep(0.3)
        raise AssertionError(f"{text!r} not seen in {timeout} s:\n{self.output()[-3000:]}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def recorded_frames(model, monkeypatch):
    """What the demo classifies (`classify_shown`): (image, label) pairs, kept so
    a test can check what reached the server and a failure can say what it was."""
    frames, classify_shown = [], model.classify_shown

    def recording(image, **options):
        try:
            result, *rest = classify_shown(image, **options)
        except Exception as error:
            frames.append((image.copy(), type(error).__name__))
            raise
        frames.append((image.copy(), result["label"]))
        return (result, *rest)
    monkeypatch.setattr(model, "classify_shown", recording)
    return frames


def from_the_margin(area, canvas):
    """Points of a stroke that goes down on a pad's margin above its canvas
    (`area`, the box around the `canvas`; boxes as x, y, width, height),
    crosses into the canvas to its middle, then goes down."""
    (_, ay, _, _), (x, y, width, height) = area, canvas
    return [(x + 0.1 * width, (ay + y) / 2), (x + 0.3 * width, y + 0.3 * height),
            (x + 0.5 * width, y + 0.5 * height), (x + 0.5 * width, y + 0.7 * height)]


def inked_from_the_edge(image):
    """Whether a pad's drawing has ink within 3 % of its left or top border:
    where a stroke from the margin comes in."""
    ink = np.asarray(image.convert("L")) < 128
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    return bool(rows.size) and min(rows[0] / ink.shape[0], cols[0] / ink.shape[1]) < 0.03


# Watches a press of the Teach tab's Record button from now on: whether the
# browser took the pointer away (a scroll or a gesture started), and whether a
# long-press menu would have opened. Statements, for execute_script or
# wrapped as a function for Playwright.
WATCH_PRESS_JS = """
const press = window.sketchlabPress = {cancels: 0, menus: 0};
window.addEventListener("pointercancel", () => { press.cancels += 1; }, true);
// Bubbling on window: after the page's own handlers have had their say.
window.addEventListener("contextmenu", (e) => { if (!e.defaultPrevented) press.menus += 1; });
return true;
"""
# What a long press on Record brought: a phone's browser asks for its menu
# as the finger stays down (headless browsers do not), so that is asked too.
PRESS_RESULT_JS = """
const button = document.querySelector("#record");
const box = button.getBoundingClientRect();
button.dispatchEvent(new MouseEvent("contextmenu", {bubbles: true, cancelable: true,
  clientX: box.x + box.width / 2, clientY: box.y + box.height / 2}));
return {cancels: window.sketchlabPress.cancels, menus: window.sketchlabPress.menus,
        selected: String(window.getSelection())};
"""
PRESS_CLEAN = {"cancels": 0, "menus": 0, "selected": ""}


# The "Wrong? It is a …" controls a finger uses, on the Draw tab.
CORRECT_CONTROLS = ("#sketch-correct-choice input, #sketch-correct-new input,"
                    " #sketch-correct-new textarea, #sketch-correct-send, #sketch-correct-retrain")
CORRECT_OPTIONS = "#sketch-correct-choice li[role=option]"


def first_of_top3(text):
    """The first class of a top-3 list, from its text as a browser shows it."""
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    return lines[lines.index("Top 3") + 1]


def newest_correction(db_path):
    """(label, predicted label, source, status) of the newest correction, read
    from the database file by a connection of its own."""
    import sqlite3
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        return db.execute("SELECT label, predicted_label, source, status FROM corrections"
                          " ORDER BY id DESC LIMIT 1").fetchone()
