"""Helpers for any test: paths, generated sketches, child processes."""
import codecs
import functools
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = "mobilenet_2_5_224_tf_no_top.h5"
TEST_ALPHA = 0.25
ARTIFACTS = ROOT / "artifacts"
PAUSE_TIMEOUT_S = 300  # kill_when: longest a child may take to print what it is killed at


def built_once(build):
    """`build()` made at most once per process, on first use, and shared: tests
    copy what it returns (a template database) instead of paying for it again.
    Threads asking while it is being built wait for that one build."""
    lock = threading.Lock()
    built = []

    @functools.wraps(build)
    def once():
        with lock:
            if not built:
                built.append(build())
            return built[0]
    return once


def copy_db(source, target):
    """A consistent copy of a SQLite file (WAL included), via SQLite's backup API."""
    from db.backup import backup
    backup(str(source), str(target))
    return Path(target)


def artifact(name):
    """Where a test keeps a file for people to look at after the run (screenshots)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name


def add_sketches(store, per_class, seed, split="train", shapes=None):
    """Store generated sketches, labeled with their shape; returns their ids."""
    from model.images import stored_form
    from model.sketches import SHAPES, dataset
    items = []
    for shape, image in dataset(per_class, seed=seed, shapes=shapes or SHAPES):
        data, width, height = stored_form(image)
        items.append({"data": data, "width": width, "height": height, "source": "generated",
                      "split": split, "label": shape})
    return [image_id for image_id, _ in store.add_images(items)]


def run_cli(*args, env=None, check=True, timeout=600):
    """Run `python -m ...` in a subprocess from the repository root."""
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, **(env or {})}, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result


def kill_when(args, pattern):
    """Run `python ARGS...` and SIGKILL it as soon as its output (stdout and
    stderr, progress bars redrawn with \\r included) matches the regex `pattern`.
    Returns everything it printed and its exit status."""
    child = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    output = ""
    # A child that never prints the pattern is killed rather than left to hang the suite.
    watchdog = threading.Timer(PAUSE_TIMEOUT_S, child.kill)
    watchdog.start()
    try:
        # Raw reads, not lines: a progress bar may never end its line.
        while chunk := os.read(child.stdout.fileno(), 4096):
            output += decoder.decode(chunk)
            if re.search(pattern, output, re.MULTILINE):
                child.send_signal(signal.SIGKILL)
                break
    finally:
        watchdog.cancel()
        child.kill()
        child.wait(timeout=60)
        child.stdout.close()
    return output, child.returncode


def kill_when_paused(args, marker):
    """kill_when, once a whole line of output starts with `marker` (the child
    prints it while holding still somewhere). Returns the lines it printed and
    its exit status."""
    # A line starts after \n or after \r (a redrawn progress bar), as in universal newlines.
    output, status = kill_when(args, f"(?:^|\r){re.escape(marker)}.*\n")
    return output.splitlines(keepends=True), status
