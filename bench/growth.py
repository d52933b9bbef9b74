"""python -m bench.growth: retrain time and peak memory as the dataset grows.

Sizes 2,400, 8,000, 40,000 and 100,000 training images (3 feature views
each) plus the fixed 2,400-image test split of the Quick, Draw! dev set. The
dev set's 2,400 training drawings are replicated to reach each size: every
copy is a distinct stored image whose cached features are the original's
plus small noise. The backbone's cost per image is linear and measured by
bench.features; this measures what else grows: reading features from SQLite,
training the head, evaluating, and memory. Each size runs in its own process
so that its peak resident memory is its own. Prints a table and, as its last
line, one JSON object; plots both (artifacts/growth.png, or --plot PATH)."""
import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.common import (ALPHA, ARTIFACTS, INPUT_SIZE, ROOT, fill_store, machine, quickdraw,
                          setup)

SIZES = (2_400, 8_000, 40_000, 100_000)
VIEWS = 3
NOISE = 0.02


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.growth", description=__doc__)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)),
                        help="comma-separated training set sizes")
    parser.add_argument("--plot", default=str(ARTIFACTS / "growth.png"),
                        help="where to write the plot (default: artifacts/growth.png)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    setup()
    if args.one:
        return _one(args.one)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        out = subprocess.run([sys.executable, "-m", "bench.growth", "--one", str(size)],
                             cwd=ROOT, capture_output=True, text=True, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{size:>7} images: retrain {row['retrain_s']:>7.1f} s "
              f"(features read + train + evaluate), peak memory {row['peak_mib']:>6.0f} MiB",
              flush=True)
    base = rows[0]
    for row in rows:
        row["time_per_image_vs_smallest"] = round(
            (row["retrain_s"] / row["train_images"]) / (base["retrain_s"] / base["train_images"]), 2)
    plot(rows, args.plot)
    print(json.dumps({"sizes": rows, "views": VIEWS, "alpha": ALPHA, "plot": args.plot,
                      "machine": machine()}))


def plot(rows, path):
    """Retrain time and peak memory against training images, log-log."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    sizes = [r["train_images"] for r in rows]
    figure, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2), dpi=120)
    left.loglog(sizes, [r["retrain_s"] for r in rows], marker="o", label="measured")
    left.loglog(sizes, [rows[0]["retrain_s"] * s / sizes[0] for s in sizes], linestyle="--",
                label="linear from the smallest")
    left.set_xlabel("training images")
    left.set_ylabel("retrain seconds")
    left.legend(fontsize=8)
    right.semilogx(sizes, [r["peak_mib"] for r in rows], marker="o")
    right.axhline(4096, color="red", linestyle=":", label="4 GiB")
    right.set_xlabel("training images")
    right.set_ylabel("peak memory (MiB)")
    right.legend(fontsize=8)
    for axes in (left, right):
        axes.grid(alpha=0.3)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)


def _one(size):
    from db import Store
    from model.features import ensure_features, feature_key
    from model.images import encode_png
    from model.train import retrain
    from PIL import Image
    store = Store(Path(tempfile.mkdtemp(prefix="sketchlab-growth-")) / "growth.db")
    rows = quickdraw()
    ids = fill_store(store, rows)
    train = [(i, r) for i, r in zip(ids, rows) if r[1] == "train"]
    ensure_features(store, ALPHA, INPUT_SIZE, ids, 1)
    ensure_features(store, ALPHA, INPUT_SIZE, [i for i, _ in train], VIEWS)
    name = feature_key(ALPHA, INPUT_SIZE)
    base = store.features([i for i, _ in train], name, VIEWS)
    rng = np.random.default_rng(0)
    copy = 0
    while len(train) + copy < size:
        items, sources = [], []
        for original, (label, _, pixels) in train[:min(len(train), size - len(train) - copy)]:
            copy += 1
            marked = pixels.copy()
            marked.flat[copy % marked.size] ^= 1 + (copy // marked.size) % 254
            data = encode_png(Image.fromarray(marked).convert("RGB"))
            items.append({"data": data, "width": 28, "height": 28,
                          "source": "generated", "split": "train", "label": label})
            sources.append(original)
        new = [image_id for image_id, _ in store.add_images(items)]
        features = []
        for image_id, original in zip(new, sources):
            for view in range(VIEWS):
                vector = np.frombuffer(base[(original, view)], np.float16).astype(np.float32)
                vector = vector + rng.normal(0, NOISE, vector.shape) * (np.abs(vector) + 0.1)
                features.append((image_id, view, np.maximum(vector, 0).astype(np.float16).tobytes()))
        store.put_features(name, features)
    result = retrain(store, {"alpha": ALPHA, "views": VIEWS, "warm_start": False}, force=True)
    assert result["features_computed"] == 0, "growth must time training, not the backbone"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"train_images": result["train_images"], "retrain_s": result["seconds"],
                      "epochs": result["epochs_run"], "peak_mib": round(peak),
                      "test_accuracy": round(result["test_accuracy"], 4)}))


if __name__ == "__main__":
    sys.exit(main())
