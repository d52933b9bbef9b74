"""python -m bench.openset: does the model know what it does not know?

Trains the product's model (`model.train.retrain`, default options) on 4
classes of the Quick, Draw! dev set (the first --per-class of each), then
runs three test sets through the serving path (preprocess, backbone, head,
calibration, novelty, as `model.classifier` does):
- known: the last 300 doodles of those 4 classes;
- unknown doodles: the last 300 of the other 4 classes;
- non-sketches: --non-sketches generated images, in equal shares of noise,
  gradients, colour scenes, camera frames without a sketch (a room, a face,
  a blank sheet) and text.

An image the product refuses as no sketch at all ("Draw something", "No
sketch in view") is never called one of the classes: it counts as called
unknown, and is shown separately. Reports AUROC (known against each unknown
set) of the product's novelty score and, for the choice of method, of the
calibrated top probability and of their sum; the share of each set called
unknown at the stored threshold; known-class accuracy with and without the
detector; and expected calibration error (ECE) of the known test set before
and after temperature scaling. Prints a table and, as its last line, one JSON
object."""
import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from bench.common import ALPHA, TEST_PER_CLASS, fill_store, machine, quickdraw, setup

BATCH = 128
KINDS = ("noise", "gradient", "colour scene", "camera frame", "text")
WORDS = ("hello", "Sketchlab", "42", "the quick brown fox", "Monday 9:30", "TODO", "x = y + 1",
         "café", "HOUSE", "draw me")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.openset", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=300,
                        help="training doodles per known class (default 300; at most 700)")
    parser.add_argument("--non-sketches", type=int, default=1200,
                        help="generated non-sketch images (default 1200)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated images")
    args = parser.parse_args(argv)
    if not 2 <= args.per_class <= 700 or args.non_sketches < len(KINDS):
        parser.error(f"--per-class takes 2..700, --non-sketches at least {len(KINDS)}")
    setup()
    from db import Store
    from model import trust
    from model.train import retrain

    rows = quickdraw(args.per_class, TEST_PER_CLASS)
    classes = sorted({label for label, _, _ in rows})
    known = classes[:4]
    store = Store(Path(tempfile.mkdtemp(prefix="sketchlab-bench-")) / "bench.db")
    fill_store(store, [r for r in rows if r[0] in known and r[1] == "train"])
    result = retrain(store, {"alpha": ALPHA})
    version = store.model_version()
    print(f"trained on {result['train_images']} doodles of {', '.join(known)} "
          f"in {result['seconds']:.1f} s", flush=True)

    tests = {
        "known": [(p, known.index(label)) for label, split, p in rows
                  if split == "test" and label in known],
        "unknown doodles": [(p, None) for label, split, p in rows
                            if split == "test" and label not in known],
        "non-sketches": [(image, None) for _, image in non_sketches(args.non_sketches,
                                                                    args.seed)],
    }
    scored = {name: _scores(version, [image for image, _ in items])
              for name, items in tests.items()}
    truth = np.array([label for _, label in tests["known"]])

    known_scores = scored["known"]
    answered = ~known_scores["refused"]
    methods = {
        "novelty (product)": lambda s: s["novelty"],
        "1 - top probability": lambda s: 1 - s["top"],
        "novelty + (1 - top probability)": lambda s: s["novelty"] + 1 - s["top"],
    }
    auroc = {f"{method} vs {name}": round(_auroc(score(known_scores), score(scored[name])), 4)
             for name in ("unknown doodles", "non-sketches") for method, score in methods.items()}
    called = {name: round(float((s["refused"] | s["unknown"]).mean()), 4)
              for name, s in scored.items()}
    refused = {name: round(float(s["refused"].mean()), 4) for name, s in scored.items()}
    right = answered.copy()
    right[answered] = known_scores["raw"].argmax(axis=1) == truth[answered]
    kept = answered & ~known_scores["unknown"]
    calibration = version["metrics"]["calibration"]
    out = {
        "auroc": auroc,
        "called_unknown": called,
        "refused_as_no_sketch": refused,
        "known_accuracy": {
            "without detector": round(float(right.mean()), 4),
            "with detector (unknown counts as wrong)": round(float((right & kept).mean()), 4),
            "with detector, of the answers given": round(float(right[kept].mean()), 4)
            if kept.any() else None},
        "ece_known_test": {
            "before": round(trust.calibration_error(known_scores["raw"][answered],
                                                    truth[answered]), 4),
            "after": round(trust.calibration_error(known_scores["calibrated"][answered],
                                                   truth[answered]), 4)},
        "temperature": round(calibration["temperature"], 3),
        "calibration_images": calibration["held_out_images"],
        "threshold": round(version["metrics"]["novelty"]["threshold"], 4),
        "known_classes": known, "per_class": args.per_class, "seed": args.seed,
        "non_sketch_kinds": KINDS, "alpha": ALPHA, "machine": machine(),
    }
    for key in ("auroc", "called_unknown", "refused_as_no_sketch", "known_accuracy",
                "ece_known_test"):
        for name, value in out[key].items():
            print(f"{key + ': ' + name:>62}: {value}")
    for key in ("temperature", "calibration_images", "threshold"):
        print(f"{key:>62}: {out[key]}")
    print(json.dumps(out))


def _scores(version, images):
    """Per image, through the serving path: raw and calibrated probabilities,
    the top calibrated probability, the novelty score, unknown or not, and
    whether preprocessing refused it as no sketch."""
    from model import trust
    from model.backbone import extractor
    from model.errors import BlankSketch
    from model.head import NumpyHead
    from model.images import preprocess
    config = version["config"]
    run = extractor(config["alpha"], config["input_size"])
    head = NumpyHead(version["head"])
    arrays, refused = [], []
    for image in images:
        try:
            arrays.append(preprocess(image, config["input_size"]))
            refused.append(False)
        except BlankSketch:
            refused.append(True)
    features = np.concatenate([run(np.stack(arrays[i:i + BATCH]))
                               for i in range(0, len(arrays), BATCH)]) if arrays else \
        np.zeros((0, 1), np.float32)
    raw = head(features) if arrays else np.zeros((0, len(version["classes"])))
    calibrated = trust.calibrate(raw, trust.temperature_of(version))
    judged = trust.judged(head.reference, trust.threshold_of(version), features)
    refused = np.array(refused)
    n = len(images)

    def spread(values, fill):
        out = np.full((n,) + np.shape(values)[1:], fill, dtype=np.float64)
        out[~refused] = values
        return out
    return {"refused": refused,
            "raw": spread(raw, np.nan), "calibrated": spread(calibrated, np.nan),
            "top": spread(calibrated.max(axis=1) if arrays else [], 0.0),
            "novelty": spread([j["unknown_score"] for j in judged], np.inf),
            "unknown": spread([j["unknown"] for j in judged], 1).astype(bool)}


def _auroc(known, unknown):
    """The chance that an unknown image scores higher than a known one (ties
    count half); refused images score infinity."""
    known, unknown = np.asarray(known, float), np.asarray(unknown, float)
    values = np.concatenate([known, unknown])
    order = values.argsort(kind="mergesort")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return float((ranks[len(known):].sum() - len(unknown) * (len(unknown) + 1) / 2)
                 / (len(known) * len(unknown)))


def non_sketches(count, seed):
    """[(kind, RGB uint8 array)]: `count` images that are not sketches, in
    equal shares of KINDS, the same for the same seed."""
    from bench import webcam_photos
    rng = np.random.default_rng(seed)
    images = []
    for index in range(count):
        kind = KINDS[index % len(KINDS)]
        if kind == "noise":
            image = _noise(rng)
        elif kind == "gradient":
            image = _gradient(rng)
        elif kind == "colour scene":
            image = webcam_photos.room(rng)
        elif kind == "camera frame":
            maker = (webcam_photos.empty_room, webcam_photos.face,
                     lambda s: webcam_photos.blank_sheet(s).image)[index // len(KINDS) % 3]
            image = maker(int(rng.integers(1 << 30)))
        else:
            image = _text(rng)
        images.append((kind, image))
    return images


def _noise(rng):
    side = int(rng.integers(64, 400))
    if rng.random() < 0.5:
        return rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    grey = np.clip(rng.normal(rng.uniform(60, 200), rng.uniform(10, 80), (side, side)), 0, 255)
    return np.repeat(grey[..., None], 3, axis=2).astype(np.uint8)


def _gradient(rng):
    height, width = (int(v) for v in rng.integers(64, 480, 2))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    if rng.random() < 0.5:
        angle = rng.uniform(0, 2 * np.pi)
        ramp = xs * np.cos(angle) + ys * np.sin(angle)
    else:
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ramp = np.hypot(ys - cy, xs - cx)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    start, end = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    return (start + (end - start) * ramp[..., None]).astype(np.uint8)


def _text(rng):
    """Typed words on a white page: dark strokes on paper, but not a drawing."""
    from PIL import Image, ImageDraw, ImageFont
    width, height = (int(v) for v in rng.integers(200, 640, 2))
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for line in range(int(rng.integers(1, 5))):
        font = ImageFont.load_default(size=int(rng.integers(14, 48)))
        words = " ".join(WORDS[i] for i in rng.integers(len(WORDS), size=int(rng.integers(1, 4))))
        position = (int(rng.uniform(5, width * 0.4)), int(rng.uniform(5, height * 0.8)))
        draw.text(position, words, fill=tuple(int(v) for v in rng.integers(0, 80, 3)), font=font)
    return np.asarray(image)


if __name__ == "__main__":
    main()
