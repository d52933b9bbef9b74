"""python -m bench.retrain: retrain time of this project against the reference
article's pipeline, in one run, on the Quick, Draw! dev set (alpha 0.25).

cold: `model.train.retrain` on a fresh database: decoding, preprocessing,
3 feature views per training image (as many backbone passes per image as
the reference's 3 epochs), training and evaluation.
warm: after 20 new labeled images arrive, in-process (imports excluded).
reference: the article's style: one Keras model of the frozen backbone and a
1024-1024-512 head, random augmentation layers in front, `fit` for 3 epochs at
batch 12, running the backbone on every image every epoch (images already
decoded and preprocessed in memory, which favours the reference); its test
evaluation is timed apart (`reference_evaluation_s`), since our cold retrain
includes computing the test features and evaluating.
Each time comes with the CPU seconds spent meanwhile by this process and its
feature workers (`*_cpu_s`), and the run with the machine's load average
before and after: the machine may be shared.
Prints a table and, as its last line, one JSON object."""
import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.alpha import _cpu_seconds
from bench.common import ALPHA, INPUT_SIZE, fill_store, machine, quickdraw, setup


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.retrain", description=__doc__)
    parser.add_argument("--skip-reference", action="store_true",
                        help="only time this project's retrains")
    args = parser.parse_args(argv)
    setup()
    from db import Store
    from model.backbone import extractor
    from model.train import retrain

    load_before = os.getloadavg()
    rows = quickdraw()
    store = Store(Path(tempfile.mkdtemp(prefix="sketchlab-bench-")) / "bench.db")
    fill_store(store, rows)
    extractor(ALPHA, INPUT_SIZE)  # the one-off conversion is not part of a retrain
    cpu = _cpu_seconds()
    cold = retrain(store, {"alpha": ALPHA, "views": 3})
    cold_cpu = _cpu_seconds(before=cpu)
    late = [(label, "train", pixels) for label, split, pixels in quickdraw(303, 0)
            if split == "train"]
    new = [row for i, row in enumerate(late) if i % 303 >= 300][:20]
    fill_store(store, new, source="sketch")
    cpu = _cpu_seconds()
    warm = retrain(store, {"alpha": ALPHA, "views": 3})
    warm_cpu = _cpu_seconds(before=cpu)
    result = {"images": len(rows), "cold_s": cold["seconds"], "cold_cpu_s": round(cold_cpu, 2),
              "warm_s": warm["seconds"], "warm_cpu_s": round(warm_cpu, 2),
              "cold_accuracy": round(cold["test_accuracy"], 4),
              "warm_accuracy": round(warm["test_accuracy"], 4),
              "warm_started": warm["warm_started"], "warm_epochs": warm["epochs_run"]}
    if not args.skip_reference:
        reference_s, reference_cpu, evaluation_s, reference_accuracy = reference(rows)
        # cold_s includes evaluating the test split; reference_s, as the issue
        # defines it, is `fit` alone. The speed-ups use that stricter basis.
        result.update(reference_s=round(reference_s, 2), reference_cpu_s=round(reference_cpu, 1),
                      reference_evaluation_s=round(evaluation_s, 2),
                      reference_accuracy=round(reference_accuracy, 4),
                      cold_speedup=round(reference_s / cold["seconds"], 1),
                      cold_speedup_both_evaluating=round(
                          (reference_s + evaluation_s) / cold["seconds"], 1),
                      warm_speedup=round(reference_s / warm["seconds"], 1))
    result.update(alpha=ALPHA, machine=machine(),
                  load_average=[round(v, 1) for v in (load_before[0], os.getloadavg()[0])])
    for key, value in result.items():
        print(f"{key:>20}: {value}")
    print(json.dumps(result))


def reference(rows):
    """(fit seconds, fit CPU seconds, evaluation seconds, test accuracy) of the
    article-style end-to-end pipeline."""
    import keras
    from PIL import Image
    from model.backbone import load_backbone
    from model.images import preprocess
    classes = sorted({label for label, _, _ in rows})
    arrays = {split: [] for split in ("train", "test")}
    labels = {split: [] for split in ("train", "test")}
    for label, split, pixels in rows:
        arrays[split].append(preprocess(Image.fromarray(pixels), INPUT_SIZE))
        labels[split].append(classes.index(label))
    x = {s: np.stack(a).astype(np.float32) for s, a in arrays.items()}
    y = {s: np.asarray(v) for s, v in labels.items()}
    keras.utils.set_random_seed(0)
    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3))
    h = keras.layers.RandomFlip("horizontal")(inputs)
    h = keras.layers.RandomRotation(0.05, fill_value=255.0, fill_mode="constant")(h)
    h = keras.layers.RandomZoom(0.1, fill_value=255.0, fill_mode="constant")(h)
    h = load_backbone(ALPHA, INPUT_SIZE)(h)
    for width in (1024, 1024, 512):
        h = keras.layers.Dense(width, activation="relu")(h)
    model = keras.Model(inputs, keras.layers.Dense(len(classes), activation="softmax")(h))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    started, cpu = time.perf_counter(), _cpu_seconds()
    model.fit(x["train"], y["train"], epochs=3, batch_size=12, shuffle=True, verbose=0)
    seconds, cpu = time.perf_counter() - started, _cpu_seconds(before=cpu)
    started = time.perf_counter()
    accuracy = model.evaluate(x["test"], y["test"], batch_size=64, verbose=0)[1]
    return seconds, cpu, time.perf_counter() - started, float(accuracy)


if __name__ == "__main__":
    main()
