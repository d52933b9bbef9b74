"""Helpers for any test: paths, generated sketches, child processes."""
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = "mobilenet_2_5_224_tf_no_top.h5"
TEST_ALPHA = 0.25
ARTIFACTS = ROOT / "artifacts"
PAUSE_TIMEOUT_S = 300  # kill_when_paused: longest a child may take to reach its marker


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


def kill_when_paused(args, marker):
    """Run `python ARGS...` and SIGKILL it when a line of its output starts with
    `marker` (the child prints it while holding still somewhere). Returns the
    lines it printed and its exit status."""
    child = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
    output = []
    # A child that never reaches its marker is killed rather than left to hang the suite.
    watchdog = threading.Timer(PAUSE_TIMEOUT_S, child.kill)
    watchdog.start()
    try:
        for line in child.stdout:
            output.append(line)
            if line.startswith(marker):
                child.send_signal(signal.SIGKILL)
                break
    finally:
        watchdog.cancel()
        child.kill()
        child.wait(timeout=60)
        child.stdout.close()
    return output, child.returncode
