"""Shared fixtures. Every test gets a real SQLite file in a temporary folder;
TensorFlow tests use the genuine MobileNet v1 alpha 0.25 ImageNet weights,
copied into a temporary KERAS_HOME before Keras is imported."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = "mobilenet_2_5_224_tf_no_top.h5"
TEST_ALPHA = 0.25
ARTIFACTS = ROOT / "artifacts"
PAUSE_TIMEOUT_S = 300  # kill_when_paused: longest a child may take to reach its marker


def _weights_sources():
    yield ROOT.parent / "shared" / "weights" / WEIGHTS
    if os.environ.get("KERAS_HOME"):
        yield Path(os.environ["KERAS_HOME"]) / "models" / WEIGHTS
    yield Path.home() / ".keras" / "models" / WEIGHTS


def pytest_configure(config):
    # Keras reads KERAS_HOME when it is imported: set it before any test module imports it.
    home = Path(tempfile.mkdtemp(prefix="sketchlab-keras-"))
    (home / "models").mkdir()
    for source in _weights_sources():
        if source.is_file():
            shutil.copy(source, home / "models" / WEIGHTS)
            break
    os.environ["KERAS_HOME"] = str(home)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ["GRADIO_TEMP_DIR"] = tempfile.mkdtemp(prefix="sketchlab-gradio-")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    ARTIFACTS.mkdir(exist_ok=True)


@pytest.fixture(scope="session")
def backbone():
    """The real alpha 0.25 backbone; skips (with the reason) only when its
    weights are nowhere: not in ../shared, not in a Keras cache, not downloadable."""
    from model.backbone import load_backbone
    from model.errors import WeightsMissing
    try:
        return load_backbone(TEST_ALPHA, 224)
    except WeightsMissing as error:
        pytest.skip(f"MobileNet weights unavailable: {error}")


@pytest.fixture
def store(tmp_path):
    from db import Store
    store = Store(tmp_path / "sketches.db")
    yield store
    store.close()


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
