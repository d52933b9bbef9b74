"""python -m bench.foundation: the foundation's figures on the Quick, Draw! dev set.

Alpha 0.25, 8 classes, 300 train + 300 test images per class. Measures a cold
retrain (every feature computed), the test accuracy, a warm retrain after 20
corrected images arrive (accepted corrections), and feature extraction speed.
Prints a table and, as its last line, one JSON object."""
import argparse
import json
import tempfile
import time
from pathlib import Path

from bench.common import ALPHA, INPUT_SIZE, fill_store, machine, quickdraw, setup


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.foundation", description=__doc__)
    parser.add_argument("--views", type=int, default=None, help="feature views per train image")
    args = parser.parse_args(argv)
    setup()
    from db import Store
    from model.backbone import extractor
    from model.train import retrain

    options = {"alpha": ALPHA}
    if args.views:
        options["views"] = args.views
    rows = quickdraw()
    extra = [r for r in quickdraw(320, 0) if r[1] == "train"]
    # Drawings 300..319 of each class: 20 per class would be 160; keep 20 in all.
    corrections = [r for i, r in enumerate(extra) if i % 320 >= 300][:20]
    store = Store(Path(tempfile.mkdtemp(prefix="sketchlab-bench-")) / "bench.db")
    fill_store(store, rows)
    started = time.perf_counter()
    extractor(ALPHA, INPUT_SIZE)
    load_s = time.perf_counter() - started

    cold = retrain(store, options)
    new_ids = fill_store(store, [(label, "train", pixels) for label, _, pixels in corrections],
                         source="sketch")
    for image_id, (label, _, _) in zip(new_ids, corrections):
        store.add_correction(image_id, label, source="sketch", sender="bench", accept=True)
    warm = retrain(store, options)
    features_per_s = cold["features_computed"] / cold["feature_seconds"]
    result = {
        "images": len(rows), "classes": len(cold["classes"]), "alpha": ALPHA,
        "views": cold["views"], "test_accuracy": round(cold["test_accuracy"], 4),
        "cold_retrain_s": cold["seconds"], "cold_feature_s": cold["feature_seconds"],
        "warm_retrain_s": warm["seconds"], "warm_features_computed": warm["features_computed"],
        "warm_test_accuracy": round(warm["test_accuracy"], 4),
        "features_per_s": round(features_per_s, 1), "backbone_load_s": round(load_s, 2),
        "engine": extractor(ALPHA, INPUT_SIZE).engine, "machine": machine(),
    }
    for key, value in result.items():
        print(f"{key:>24}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
