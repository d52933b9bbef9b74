"""python -m bench.latency: single-image latency of the serving path versus
Keras `model.predict()` on the same model (alpha 0.25 backbone + a head trained
on the Quick, Draw! dev set), in one run.

serving: what the demo and `model.predict` run per request after
preprocessing (LiteRT backbone + NumPy head); classify: the same plus
preprocessing from a decoded image; predict: one Keras model of backbone plus
head, `model.predict(x)` on the same preprocessed array. Also checks that
both give the same probabilities. Prints a table and, as its last line, one
JSON object."""
import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import ALPHA, INPUT_SIZE, fill_store, machine, quickdraw, setup


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__)
    parser.add_argument("--calls", type=int, default=200, help="calls per path")
    args = parser.parse_args(argv)
    setup()
    from PIL import Image
    from db import Store
    from model.classifier import Classifier
    from model.export import full_model
    from model.images import preprocess
    from model.train import retrain

    store = Store(Path(tempfile.mkdtemp(prefix="sketchlab-bench-")) / "bench.db")
    rows = quickdraw(100, 50)
    fill_store(store, rows)
    retrain(store, {"alpha": ALPHA, "views": 1})
    classifier = Classifier(store)
    version = classifier.version
    reference = full_model(store.model_version())
    images = [Image.fromarray(pixels) for _, split, pixels in rows if split == "test"]
    arrays = [preprocess(image, INPUT_SIZE)[None].astype(np.float32) for image in images]
    # What Classifier.classify hands the network: uint8, one channel for a grey drawing.
    inputs = [preprocess(image, INPUT_SIZE, keep_grey=True)[None] for image in images]

    def serving(i):
        return classifier.probabilities(inputs[i % len(inputs)])[1]

    def classify(i):
        return classifier.classify(images[i % len(images)])

    def predict(i):
        return reference.predict(arrays[i % len(arrays)], verbose=0)

    difference = max(float(np.abs(serving(i) - predict(i)).max()) for i in range(20))
    timings = {name: _latencies(run, args.calls) for name, run in
               (("serving", serving), ("classify", classify), ("predict", predict))}
    result = {f"{name}_{stat}_ms": round(float(np.percentile(ms, q)), 2)
              for name, ms in timings.items() for stat, q in (("p50", 50), ("p95", 95))}
    result["speedup"] = round(result["predict_p50_ms"] / result["serving_p50_ms"], 1)
    result["max_probability_difference"] = difference
    result.update(calls=args.calls, alpha=ALPHA, model_version=version["id"],
                  engine=_engine(ALPHA), machine=machine())
    for key, value in result.items():
        print(f"{key:>28}: {value}")
    print(json.dumps(result))


def _latencies(run, calls):
    for i in range(10):
        run(i)
    out = []
    for i in range(calls):
        started = time.perf_counter()
        run(i)
        out.append((time.perf_counter() - started) * 1000)
    return np.asarray(out)


def _engine(alpha):
    from model.backbone import extractor
    return extractor(alpha, INPUT_SIZE).engine


if __name__ == "__main__":
    main()
