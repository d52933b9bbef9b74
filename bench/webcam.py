"""python -m bench.webcam: sketches held up to a webcam, simulated.

Each Quick, Draw! dev doodle (first N of each class to train, last N to test)
is drawn on a sheet of paper in a simulated 640x480 webcam photo
(bench/webcam_photos.py, seeded by --seed): its own strokes, or with --pen
redrawn its centre lines traced by a pen (the harder variant: a path read
back from a 28-px bitmap, which loses about 3 points before any camera).
Reports test accuracy for photos -> photos (trained on photos of the train
doodles), drawings -> photos (trained on the clean doodles) and clean drawings
(the ceiling), each with the product's preprocessing and with the old one
(no sheet finding: `preprocess` with sheets=False); the share of photos where
no sketch was found (counted as wrong answers); and milliseconds per frame of
the preprocessing as the product calls it (one grey channel out), wall clock
and CPU time of this process (the CPU time is less disturbed by other work on
a shared machine).

Live streams: --streams simulated streams (`webcam_photos.stream`: one sheet
held up, moving up to 6 pixels and 1.5 degrees between frames, 8 frames each,
over the first test doodles) are preprocessed frame by frame with a
`model.sheet.Track` (the sheet looked for where it was in the previous frame)
and without; reports the frames read, those within 30 pixels of the sheet's
true corners, and milliseconds per frame, each way.

Heads: the product's NumPy head (`model.head.train_head`, default config),
trained on one plain view per image, and again with each training image's
paper view as well (`model.images.on_paper`: the sketch as the webcam path
reads it from paper, the product's feature view 1); the product's further
augmented views are left out. --head-seeds N trains each head with seeds 0
.. N-1 and reports the mean and range of its accuracy: two heads trained on
slightly different images differ by up to about a point.

--breakdown: where photos -> photos loses to the clean drawings. Each photo is
also read with the sheet's TRUE corners (`model.sheet.upright_sheet`, then
`clean_sheet`: the reading alone), and the sheet's exact ink is read twice
with no camera at all: drawn on a flat white sheet and read by `clean_sheet`
(the ink and the reading), and cropped as a drawing (the ink alone). Photos ->
photos is reported for each of these readings, over all test photos and by
each condition the generator drew (`webcam_photos.photo`'s `conditions`:
the sheet's size in the frame, the strokes' width, pencil, paper, a pale room,
a finger, light, blur, noise, JPEG, tilt), beside the clean drawings'
accuracy on the same doodles and the share of photos where no sketch was read.

Prints a table and, as its last line, one JSON object."""
import argparse
import json
import os
import time

import numpy as np

from bench.common import INPUT_SIZE, TEST_PER_CLASS, machine, quickdraw, setup

BATCH = 128


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.webcam", description=__doc__)
    parser.add_argument("--per-class", type=int, default=TEST_PER_CLASS,
                        help=f"train and test doodles per class (default {TEST_PER_CLASS}; "
                             f"at most 500)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated photos")
    parser.add_argument("--streams", type=int, default=50,
                        help="simulated live streams of 8 frames to time with and without "
                             "tracking the sheet (default 50; 0 skips them)")
    parser.add_argument("--alpha", type=float, default=0.25, choices=(0.25, 1.0),
                        help="MobileNet width (1.0 runs a stand-in for the genuine weights)")
    parser.add_argument("--pen", default="doodle", choices=("doodle", "redrawn"),
                        help="the photos' ink: the doodle's own strokes (default) or its "
                             "centre lines traced by a pen")
    parser.add_argument("--head-seeds", type=int, default=1,
                        help="train each head with this many seeds (0, 1, ...) and report the "
                             "mean accuracy and its range: two heads trained on the same "
                             "features differ by up to about a point (default 1)")
    parser.add_argument("--breakdown", action="store_true",
                        help="also read each photo with the sheet's true corners and the sheet's "
                             "ink with no camera, and break photos -> photos down by the "
                             "generator's conditions")
    args = parser.parse_args(argv)
    if not 1 <= args.per_class <= 500:
        parser.error("--per-class takes 1..500")
    if args.head_seeds < 1:
        parser.error("--head-seeds takes 1 or more")
    if not 0 <= args.streams <= args.per_class * 8:
        parser.error("--streams takes 0 up to the test doodles (8 x --per-class)")
    setup(alphas=(args.alpha,))
    from bench import webcam_photos
    from model.backbone import extractor
    from model.errors import BlankSketch
    from model.features import PAPER_VIEW
    from model.images import on_paper, preprocess
    from model.sheet import Track

    run = extractor(args.alpha, INPUT_SIZE)
    rows = quickdraw(args.per_class, args.per_class)
    classes = sorted({label for label, _, _ in rows})
    features = {}  # (path, kind, split) -> list of feature rows or None (refused)
    labels = {"train": [], "test": []}
    timings = {"new": [], "old": []}
    conditions = []
    pending = {}

    def flush(key):
        arrays = pending.pop(key, [])
        # One grey channel or three (a colour photo taken for a drawing): the
        # backbone takes a batch of one kind at a time.
        vectors = [None] * len(arrays)
        for channels in {a.shape[-1] for a in arrays if a is not None}:
            batch = [i for i, a in enumerate(arrays) if a is not None and a.shape[-1] == channels]
            for i, vector in zip(batch, run(np.stack([arrays[i] for i in batch]))):
                vectors[i] = vector
        features.setdefault(key, []).extend(vectors)

    def add(key, array):
        pending.setdefault(key, []).append(array)
        if len(pending[key]) >= BATCH:
            flush(key)

    def prepared(image, sheets, clock=None):
        started, cpu = time.perf_counter(), time.process_time()
        try:
            array = preprocess(image, INPUT_SIZE, sheets=sheets, keep_grey=True)
        except BlankSketch:
            array = None
        if clock is not None:
            clock.append((time.perf_counter() - started, time.process_time() - cpu))
        return array

    load = [round(v, 2) for v in os.getloadavg()]
    started = time.perf_counter()
    for index, (label, split, pixels) in enumerate(rows):
        labels[split].append(classes.index(label))
        clean = prepared(pixels, sheets=True)
        add(("new", "drawing", split), clean)
        shot = webcam_photos.photo(pixels, seed=args.seed * 1_000_000 + index, pen=args.pen)
        photo = shot.image
        read = prepared(photo, True, timings["new"])
        if args.breakdown:
            for reading, array in _readings(shot).items():
                add((reading, "photo", split), array)
            if split == "test":
                conditions.append(shot.conditions)
        add(("new", "photo", split), read)
        if split == "train":
            for kind, array in (("drawing", clean), ("photo", read)):
                add(("paper", kind, split),
                    None if array is None else on_paper(array, [PAPER_VIEW, index]))
        add(("old", "photo", split), prepared(photo, False, timings["old"]))
        if split == "test" and clean is not None:
            assert np.array_equal(clean, prepared(pixels, sheets=False)), "drawing changed"
        if index % 400 == 399:
            print(f"{index + 1}/{len(rows)} doodles, {time.perf_counter() - started:.0f} s",
                  flush=True)
    for key in list(pending):
        flush(key)
    streams = _streams(webcam_photos, [p for _, split, p in rows if split == "test"][:args.streams],
                       args.seed, args.pen, preprocess, Track, BlankSketch)

    accuracy = {}
    for path in ("new", "old"):
        for name, train_kind in (("photos->photos", "photo"), ("drawings->photos", "drawing")):
            accuracy[f"{name} ({path})"] = _accuracy(
                features[("new" if train_kind == "drawing" else path, train_kind, "train")],
                labels["train"], features[(path, "photo", "test")], labels["test"], len(classes),
                args.head_seeds)
    accuracy["clean drawings (both)"] = _accuracy(
        features[("new", "drawing", "train")], labels["train"],
        features[("new", "drawing", "test")], labels["test"], len(classes), args.head_seeds)
    for name, kind in (("photos->photos", "photo"), ("drawings->photos", "drawing"),
                       ("clean drawings", "drawing")):
        test = features[("new", "drawing" if name == "clean drawings" else "photo", "test")]
        accuracy[f"{name} (new, paper views)"] = _accuracy(
            features[("new", kind, "train")] + features[("paper", kind, "train")],
            labels["train"] * 2, test, labels["test"], len(classes), args.head_seeds)
    missed = {path: float(np.mean([f is None for split in ("train", "test")
                                   for f in features[(path, "photo", split)]]))
              for path in ("new", "old")}
    breakdown = _breakdown(features, labels, len(classes), conditions) if args.breakdown else None
    result = {
        "accuracy": {k: round(float(np.mean(v)), 4) for k, v in accuracy.items()},
        "accuracy_range": {k: [round(min(v), 4), round(max(v), 4)] for k, v in accuracy.items()}
        if args.head_seeds > 1 else None, "head_seeds": args.head_seeds,
        "breakdown": breakdown,
        "no_sketch_found": {k: round(v, 4) for k, v in missed.items()},
        "ms_per_frame": {f"{path} {clock}": {
            f"p{q}": round(1000 * float(np.percentile([t[column] for t in times], q)), 1)
            for q in (50, 95)}
            for path, times in timings.items() for column, clock in enumerate(("wall", "cpu"))},
        "streams": streams,
        "per_class": args.per_class, "classes": len(classes), "seed": args.seed,
        "pen": args.pen, "photos_version": webcam_photos.VERSION,
        "alpha": args.alpha, "engine": run.engine, "head": "model.head.train_head, 1 view (2 with paper views)",
        "seconds": round(time.perf_counter() - started, 1), "machine": machine(),
        # Wall-clock figures depend on what else the machine runs: its load
        # (1, 5, 15 minutes) when the bench started and when it ended.
        "load_average": {"start": load, "end": [round(v, 2) for v in os.getloadavg()]},
    }
    for name, value in result["accuracy"].items():
        spread = result["accuracy_range"]
        print(f"{name:>28}: {value:.4f}" + (f" ({spread[name][0]:.4f}-{spread[name][1]:.4f}, "
                                            f"{args.head_seeds} head seeds)" if spread else ""))
    for key in ("no_sketch_found", "ms_per_frame", "streams", "per_class", "pen", "alpha",
                "seconds", "load_average"):
        print(f"{key:>28}: {result[key]}")
    if breakdown:
        _print_breakdown(breakdown)
    print(json.dumps(result))


# The readings --breakdown compares, from the clean drawing to the product.
READINGS = {"clean": "clean drawings", "pen": "the sheet's ink, cropped as a drawing",
            "pen read": "the sheet's ink on flat paper, read by clean_sheet",
            "true corners": "the photo read with the sheet's true corners",
            "new": "the product (the sheet found in the photo)"}
# Conditions the breakdown groups the test photos by: (name, bucket edges),
# or None for a condition of a few values.
CONDITIONS = (("sheet_side", (0, 300, 360, 420, 1e9)), ("drawing_in_frame", (0, 100, 140, 180, 1e9)),
              ("pen_in_frame", (0, 2, 3, 4, 1e9)), ("pencil", None), ("lined", None),
              ("paper", None), ("pale_room", None), ("finger", None), ("shadow", None),
              ("light", (0, 0.85, 1.0, 9)), ("blur", (0, 0.3, 0.8, 9)),
              ("noise", (0, 3.5, 5.5, 99)), ("jpeg", (0, 65, 80, 999)), ("tilt", (0, 10, 20, 99)))


def _readings(shot):
    """The arrays --breakdown adds for a Photo: read with its true corners, and
    its sheet's exact ink read from flat paper and cropped as a drawing; None
    where no sketch is read."""
    import cv2
    from PIL import Image

    from model.errors import BlankSketch
    from model.images import preprocess
    from model.sheet import clean_sheet, upright_sheet

    def cropped(clean):
        try:
            return None if clean is None else preprocess(Image.fromarray(clean).convert("RGB"),
                                                         INPUT_SIZE, sheets=False, keep_grey=True)
        except BlankSketch:
            return None

    grey = cv2.cvtColor(shot.image, cv2.COLOR_RGB2GRAY)
    ink = (255 * (1 - np.clip(shot.sheet_ink, 0, 1))).astype(np.uint8)
    height, width = ink.shape
    flat = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    return {"true corners": cropped(clean_sheet(upright_sheet(grey, shot.corners)[0])),
            "pen read": cropped(clean_sheet(upright_sheet(ink, flat)[0])),
            "pen": cropped(ink)}


def _breakdown(features, labels, n_classes, conditions):
    """Photos -> photos of each reading (READINGS), over all test photos and
    by condition: {"all" or "condition value": {"n", reading: accuracy,
    reading + " no sketch": share}}."""
    right, missed = {}, {}
    for reading in READINGS:
        kind = "drawing" if reading == "clean" else "photo"
        path = "new" if reading == "clean" else reading
        test = features[(path, kind, "test")]
        right[reading] = _right(features[(path, kind, "train")], labels["train"], test,
                                labels["test"], n_classes)
        missed[reading] = np.array([f is None for f in test])
    groups = {"all": np.ones(len(conditions), bool)}
    for name, edges in CONDITIONS:
        values = [c[name] for c in conditions]
        if edges is None:
            for value in sorted(set(values), key=str):
                groups[f"{name} {value}"] = np.array([v == value for v in values])
        else:
            values = np.array(values, float)
            for low, high in zip(edges[:-1], edges[1:]):
                groups[f"{name} {low:g}-{high:g}"] = (values >= low) & (values < high)
    table = {}
    for group, chosen in groups.items():
        if not chosen.any():
            continue
        row = {"n": int(chosen.sum())}
        for reading in READINGS:
            row[reading] = round(float(right[reading][chosen].mean()), 4)
            if reading != "clean":
                row[f"{reading} no sketch"] = round(float(missed[reading][chosen].mean()), 4)
        table[group] = row
    return table


def _print_breakdown(breakdown):
    print("\nphotos -> photos by reading and condition (accuracy / share with no sketch read):")
    for reading, meaning in READINGS.items():
        print(f"  {reading}: {meaning}")
    print(f"{'condition':<26}{'n':>6}" + "".join(f"{r:>16}" for r in READINGS))
    for group, row in breakdown.items():
        cells = [f"{row[r]:.3f}" + ("" if r == "clean" else f" / {row[r + ' no sketch']:.3f}")
                 for r in READINGS]
        print(f"{group:<26}{row['n']:>6}" + "".join(f"{c:>16}" for c in cells))


def _streams(webcam_photos, doodles, seed, pen, preprocess, Track, BlankSketch):
    """Frames read, frames within 30 pixels of the true corners, and ms per
    frame (wall, CPU; p50, p95) of simulated live streams, each frame read
    with the stream's Track and without one."""
    from model.sheet import find_sketch
    result = {way: {"frames": 0, "read": 0, "right": 0, "times": []} for way in ("tracked", "each frame")}
    for index, doodle in enumerate(doodles):
        track = Track()
        for frame in webcam_photos.stream(doodle, seed=seed * 1_000_000 + 500_000 + index,
                                          pen=pen):
            for way, hint in (("tracked", track), ("each frame", None)):
                counts = result[way]
                counts["frames"] += 1
                started, cpu = time.perf_counter(), time.process_time()
                try:
                    preprocess(frame.image, INPUT_SIZE, track=hint, keep_grey=True)
                    read = True
                except BlankSketch:
                    read = False
                counts["times"].append((time.perf_counter() - started, time.process_time() - cpu))
                counts["read"] += read
                if read:
                    corners = track.corners if hint is not None else find_sketch(frame.image).corners
                    error = min(np.linalg.norm(np.roll(corners, k, axis=0) - frame.corners,
                                               axis=1).max() for k in range(4))
                    counts["right"] += bool(error < 30)
    for counts in result.values():
        times = counts.pop("times")
        for column, clock in enumerate(("wall", "cpu")):
            counts[f"ms {clock}"] = {f"p{q}": round(1000 * float(np.percentile(
                [t[column] for t in times], q)), 1) for q in (50, 95)} if times else None
    return result


def _accuracy(train, train_labels, test, test_labels, n_classes, seeds=1):
    """Test accuracy of a head trained on the images that gave features, once
    for each head seed 0 .. seeds - 1 (a list); an image refused as having no
    sketch counts as a wrong answer."""
    return [float(_right(train, train_labels, test, test_labels, n_classes, seed).mean())
            for seed in range(seeds)]


def _right(train, train_labels, test, test_labels, n_classes, seed=0):
    """Whether each test image is answered right by a head (trained with
    `seed`) on the images that gave features; an image refused as having no
    sketch is wrong."""
    from model.config import make_config
    from model.head import forward, train_head
    kept = [i for i, f in enumerate(train) if f is not None]
    x = np.stack([train[i] for i in kept]).astype(np.float32)
    y = np.asarray([train_labels[i] for i in kept])
    params, _ = train_head(x, y, n_classes, make_config(seed=seed))
    scored = [i for i, f in enumerate(test) if f is not None]
    right = np.zeros(len(test), bool)
    if scored:
        predicted = forward(params, np.stack([test[i] for i in scored]).astype(np.float32))[0]
        right[scored] = predicted.argmax(1) == np.asarray([test_labels[i] for i in scored])
    return right


if __name__ == "__main__":
    main()
