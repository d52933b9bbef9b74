"""Shared set-up of the benchmarks: the shared weights in a temporary
KERAS_HOME (the genuine alpha 0.25 file, or the alpha 1.0 stand-in) and the
Quick, Draw! dev set in a fresh SQLite file, split the same way in every
report (first 300 of each class to train, last 300 to test)."""
import os
import platform
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# Git-ignored: a bench run never overwrites the committed pictures in docs/
# unless it is given --plot docs/....
ARTIFACTS = ROOT / "artifacts"
SHARED = ROOT.parent / "shared"
DATASET = SHARED / "data" / "quickdraw-dev.npz"
ALPHA = 0.25
# Every bench runs the backbone at this side: the one the shared weights are for.
INPUT_SIZE = 224
WEIGHTS = SHARED / "weights" / f"mobilenet_2_5_{INPUT_SIZE}_tf_no_top.h5"
# The genuine alpha 1.0 weights are not available here: a faithful stand-in is
# (shared/README.md), installed under the name Keras looks for.
STAND_IN = {1.0: SHARED / "weights" / f"mobilenet_1_0_{INPUT_SIZE}_from_coral_no_top.h5"}
# The shared file each alpha a bench can run loads.
SHARED_WEIGHTS = {ALPHA: WEIGHTS, **STAND_IN}
TRAIN_PER_CLASS = 300
TEST_PER_CLASS = 300


def setup(dataset=True, alphas=(ALPHA,)):
    """Point Keras at a temporary cache holding the shared weights of `alphas`
    (before Keras is imported); exit with the reason when they, or the dataset
    it needs, are missing. Returns the KERAS_HOME."""
    home = keras_home(alphas, dataset)
    os.environ["KERAS_HOME"] = str(home)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return home


def keras_home(alphas=(ALPHA,), dataset=False):
    """A fresh temporary KERAS_HOME whose models/ holds the shared weights of
    each of `alphas` under the file name Keras loads (the stand-in for 1.0);
    exits with the reason when a file, or the dataset, is missing. Changes no
    environment: a bench may hand it to a child process."""
    unknown = [a for a in alphas if a not in SHARED_WEIGHTS]
    if unknown:
        sys.exit(f"no shared weights for alpha {unknown[0]:g}; the shared folder has "
                 f"{', '.join(f'{a:g}' for a in SHARED_WEIGHTS)}")
    for path in [SHARED_WEIGHTS[a] for a in alphas] + ([DATASET] if dataset else []):
        if not path.exists():
            sys.exit(f"benchmark needs {path} (the project's shared data); not found")
    from model.backbone import weights_filename  # imports no Keras
    home = Path(tempfile.mkdtemp(prefix="sketchlab-bench-keras-"))
    (home / "models").mkdir()
    for alpha in alphas:
        shutil.copy(SHARED_WEIGHTS[alpha], home / "models" / weights_filename(alpha, INPUT_SIZE))
    return home


def quickdraw(train_per_class=TRAIN_PER_CLASS, test_per_class=TEST_PER_CLASS):
    """[(class, split, black-on-white uint8 28x28)] with the fixed split rule."""
    data = np.load(DATASET)
    x, y, classes = data["x"], data["y"], [str(c) for c in data["classes"]]
    rows = []
    for index, name in enumerate(classes):
        drawings = x[y == index]
        rows += [(name, "train", 255 - d) for d in drawings[:train_per_class]]
        rows += [(name, "test", 255 - d) for d in drawings[len(drawings) - test_per_class:]]
    return rows


def fill_store(store, rows, source="import"):
    """Store the drawings as the importer would, in batches; returns their ids."""
    from PIL import Image
    from model.images import stored_form
    ids = []
    for start in range(0, len(rows), 500):
        items = []
        for label, split, pixels in rows[start:start + 500]:
            data, width, height = stored_form(Image.fromarray(pixels))
            items.append({"data": data, "width": width, "height": height, "source": source,
                          "split": split, "label": label})
        ids += [image_id for image_id, _ in store.add_images(items)]
    return ids


def machine():
    return {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version()}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Tally:
    """Latencies (start, seconds) and failures of calls made from several threads.
    Answers saying the server is busy (Gradio's full queue) are kept apart from errors."""

    def __init__(self):
        self.latencies, self.busy, self.errors = [], [], []
        self._lock = threading.Lock()

    def call(self, function, *args):
        started = time.perf_counter()
        try:
            function(*args)
        except Exception as error:  # counted, never hidden
            text = repr(error)
            with self._lock:
                busy = "busy" in text.lower() or "full" in text.lower()
                (self.busy if busy else self.errors).append(text)
            return
        with self._lock:
            self.latencies.append((started, time.perf_counter() - started))

    def seconds(self):
        return [s for _, s in self.latencies]


def run_threads(count, worker):
    """worker(index) in `count` threads released together; returns the wall seconds."""
    barrier = threading.Barrier(count)

    def run(index):
        barrier.wait()
        worker(index)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started
