"""python -m bench.webcam_oracle: the sketch cleaning alone, with the sheet found exactly.

The simulated webcam photos of bench/webcam.py (same doodles, same seeds) are
rectified with the sheet's TRUE corners (`model.sheet.upright_sheet`), so that
only `model.sheet.clean_sheet` and the crop after it decide what the
classifier sees. Reports test accuracy for drawings -> photos (trained on the
clean doodles, as users teach on the canvas), photos -> photos (trained on
photos of the train doodles), two measures of training-side help: drawings +
photos -> photos (both) and drawings + paper views -> photos (the clean
doodles plus each one's `model.images.on_paper` view, as the product trains),
and clean drawings (the ceiling). A perfect reading is measured too: photos
-> photos and drawings -> photos on the exact ink the generator put on
each sheet (no camera, no light), preprocessed like a drawing: what the
photos still show of the doodles, whatever reads them. Also the share of sheets
where clean_sheet found no sketch (counted as wrong answers); the median
stroke width (pixels at 224) and ink share of drawings and of photo sketches;
and clean_sheet's CPU milliseconds per sheet (p50, p95, first 100 sheets).

--pens: what the simulated ink itself keeps of the doodles. Photos -> photos
on the ink alone (no sheet, no camera; each doodle drawn at a size and
with a weight or pen of its own seed, as in the photos), cropped as a
drawing, for the generator's ink (`webcam_photos._strokes`: the doodle's
own strokes, 0.6-1.1 times as heavy), the same at the doodle's own weight,
and the pen of `bench.webcam --pen redrawn` (centre lines traced anew).

Saves a contact sheet PNG into artifacts/ (git-ignored): for test doodles
spread over the classes, the preprocessed clean doodle, the preprocessed
sketch read from its photo, and the raw upright sheet, side by side.

The upright sheets and the drawings' features are cached in artifacts/ (they
do not depend on clean_sheet); --fresh recomputes them. Prints a table and, as
its last line, one JSON object."""
import argparse
import json
import pickle
import time

import numpy as np

from bench.common import ARTIFACTS, INPUT_SIZE, machine, quickdraw, setup

BATCH = 128
# The sheets timed for clean_sheet's CPU time.
TIMED = 100


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.webcam_oracle", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=100,
                        help="train and test doodles per class (default 100; at most 500)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated photos")
    parser.add_argument("--pairs", type=int, default=32,
                        help="test doodles shown in the contact sheet (default 32)")
    parser.add_argument("--fresh", action="store_true",
                        help="recompute the cached upright sheets and drawing features")
    parser.add_argument("--plot", default=None,
                        help="contact sheet path (default artifacts/webcam_oracle.png)")
    parser.add_argument("--pens", action="store_true",
                        help="also measure the ink alone, as the generator draws it and as "
                             "variants of it do")
    args = parser.parse_args(argv)
    if not 1 <= args.per_class <= 500:
        parser.error("--per-class takes 1..500")
    setup()
    import cv2
    from PIL import Image

    from bench.webcam import _accuracy
    from model.backbone import extractor
    from model.errors import BlankSketch
    from model.features import PAPER_VIEW
    from model.images import on_paper, preprocess
    from model.sheet import clean_sheet

    started = time.perf_counter()
    ARTIFACTS.mkdir(exist_ok=True)
    rows = quickdraw(args.per_class, args.per_class)
    classes = sorted({label for label, _, _ in rows})
    labels = np.array([classes.index(label) for label, _, _ in rows])
    splits = np.array([split for _, split, _ in rows])
    from bench import webcam_photos
    sheets, pen_inks = zip(*_cached(
        ARTIFACTS / f"webcam_oracle_sheets_ink_v{webcam_photos.VERSION}_{args.per_class}_"
                    f"{args.seed}.pkl",
        args.fresh, lambda: _upright_sheets(rows, args.seed)))
    drawings = [preprocess(pixels, INPUT_SIZE) for _, _, pixels in rows]

    cleaned, cpu = [], []
    for index, sheet in enumerate(sheets):
        before = time.process_time()
        clean = clean_sheet(sheet)
        if index < TIMED:
            cpu.append(time.process_time() - before)
        if clean is not None:
            try:
                clean = preprocess(Image.fromarray(clean).convert("RGB"), INPUT_SIZE,
                                   sheets=False)
            except BlankSketch:
                clean = None
        cleaned.append(clean)

    run = extractor(0.25, INPUT_SIZE)
    drawing_features = _cached(ARTIFACTS / f"webcam_oracle_drawings_{args.per_class}.pkl",
                               args.fresh, lambda: _features(run, drawings))
    photo_features = _features(run, cleaned)
    paper = [on_paper(drawing, [PAPER_VIEW, index]) if split == "train" else None
             for index, (drawing, split) in enumerate(zip(drawings, splits))]
    paper_features = _features(run, paper)
    perfect = [preprocess(Image.fromarray(ink), INPUT_SIZE, sheets=False) for ink in pen_inks]
    perfect_features = _features(run, perfect)

    def pick(features, split):
        chosen = np.flatnonzero(splits == split)
        return [features[i] for i in chosen], list(labels[chosen])

    n = len(classes)
    train_d, train_labels = pick(drawing_features, "train")
    train_p, _ = pick(photo_features, "train")
    test_d, test_labels = pick(drawing_features, "test")
    test_p, _ = pick(photo_features, "test")
    train_v, _ = pick(paper_features, "train")
    train_i, _ = pick(perfect_features, "train")
    test_i, _ = pick(perfect_features, "test")
    accuracy = {
        "drawings->photos": _accuracy(train_d, train_labels, test_p, test_labels, n),
        "photos->photos": _accuracy(train_p, train_labels, test_p, test_labels, n),
        "drawings+photos->photos": _accuracy(train_d + train_p, train_labels * 2, test_p,
                                             test_labels, n),
        "drawings+paper views->photos": _accuracy(train_d + train_v, train_labels * 2, test_p,
                                                  test_labels, n),
        "clean drawings": _accuracy(train_d, train_labels, test_d, test_labels, n),
        "perfect reading: photos->photos": _accuracy(train_i, train_labels, test_i,
                                                     test_labels, n),
        "perfect reading: drawings->photos": _accuracy(train_d, train_labels, test_i,
                                                       test_labels, n),
    }
    if args.pens:
        for name, options in PENS.items():
            inks = _pen_inks(rows, webcam_photos, options)
            arrays = []
            for ink in inks:
                try:
                    arrays.append(preprocess(Image.fromarray(ink), INPUT_SIZE, sheets=False))
                except BlankSketch:
                    arrays.append(None)
            features = _features(run, arrays)
            train, _ = pick(features, "train")
            test, _ = pick(features, "test")
            accuracy[f"ink alone: {name}"] = _accuracy(train, train_labels, test, test_labels, n)
    widths = {"drawings": _stroke_stats(drawings), "photos": _stroke_stats(cleaned)}
    path = args.plot or ARTIFACTS / "webcam_oracle.png"
    shown = _spread(np.flatnonzero(splits == "test"), labels, args.pairs)
    _contact_sheet(path, [(drawings[i], cleaned[i], sheets[i]) for i in shown], cv2)

    result = {
        "accuracy": {k: round(v, 4) for k, v in accuracy.items()},
        "no_sketch": round(float(np.mean([c is None for c in cleaned])), 4),
        "stroke_width_px": {k: v[0] for k, v in widths.items()},
        "ink_share": {k: v[1] for k, v in widths.items()},
        "clean_sheet_cpu_ms": {f"p{q}": round(1000 * float(np.percentile(cpu, q)), 2)
                               for q in (50, 95)},
        "sheet_side": int(max(sheets[0].shape)),
        "per_class": args.per_class, "classes": n, "seed": args.seed,
        "contact_sheet": str(path), "seconds": round(time.perf_counter() - started, 1),
        "machine": machine(),
    }
    for name, value in result["accuracy"].items():
        print(f"{name:>30}: {value:.4f}")
    for key in ("no_sketch", "stroke_width_px", "ink_share", "clean_sheet_cpu_ms",
                "contact_sheet", "seconds"):
        print(f"{key:>30}: {result[key]}")
    print(json.dumps(result))


# --pens: the generator's ink and its variants (options of webcam_photos._strokes).
PENS = {"the generator's ink": {}, "the doodle's own weight": {"weight": False},
        "the redrawn pen": {"pen": "redrawn"}}


def _pen_inks(rows, webcam_photos, options):
    """Each doodle's ink as `webcam_photos._strokes` draws it with `options`,
    black on white; its size on the sheet and its weight or pen drawn from a
    seed of its own, the same for every variant."""
    inks = []
    for index, (_, _, pixels) in enumerate(rows):
        rng = np.random.default_rng(index)
        side = int(rng.uniform(0.45, 0.8) * int(webcam_photos.SHEET_LONG / 1.414))
        ink = webcam_photos._strokes(pixels, side, rng, {}, **options)
        inks.append((255 * (1 - np.clip(ink, 0, 1))).astype(np.uint8))
    return inks


def _cached(path, fresh, compute):
    if path.exists() and not fresh:
        with open(path, "rb") as file:
            return pickle.load(file)
    value = compute()
    with open(path, "wb") as file:
        pickle.dump(value, file)
    return value


def _upright_sheets(rows, seed):
    """(grey upright sheet warped from its true corners, the pen's exact ink on
    the sheet as a black-on-white drawing) of each doodle's photo (the photos
    of bench/webcam.py: the same seed for the same doodle)."""
    import cv2

    from bench import webcam_photos
    from model.sheet import upright_sheet
    sheets = []
    started = time.perf_counter()
    for index, (_, _, pixels) in enumerate(rows):
        photo = webcam_photos.photo(pixels, seed=seed * 1_000_000 + index)
        grey = cv2.cvtColor(photo.image, cv2.COLOR_RGB2GRAY)
        ink = (255 * (1 - np.clip(photo.sheet_ink, 0, 1))).astype(np.uint8)
        sheets.append((upright_sheet(grey, photo.corners)[0], ink))
        if index % 400 == 399:
            print(f"{index + 1}/{len(rows)} photos, {time.perf_counter() - started:.0f} s",
                  flush=True)
    return sheets


def _features(run, arrays):
    """Backbone features of each array, None where the array is None."""
    ready = [a for a in arrays if a is not None]
    vectors = []
    for start in range(0, len(ready), BATCH):
        vectors.extend(run(np.stack(ready[start:start + BATCH])))
    vectors = iter(vectors)
    return [None if a is None else next(vectors) for a in arrays]


def _stroke_stats(arrays):
    """(median stroke width in pixels, median ink share) of preprocessed images:
    the width is twice the ink's area over its outline's length."""
    import cv2
    widths, shares = [], []
    for array in arrays:
        if array is None:
            continue
        ink = (array[..., 0] < 128).astype(np.uint8)
        outline = ink & ~cv2.erode(ink, np.ones((3, 3), np.uint8))
        widths.append(2 * ink.sum() / max(outline.sum(), 1))
        shares.append(ink.mean())
    return round(float(np.median(widths)), 2), round(float(np.median(shares)), 4)


def _spread(indices, labels, count):
    """`count` of the indices, taken in turn from each class."""
    by_class = [list(indices[labels[indices] == c]) for c in np.unique(labels[indices])]
    chosen = []
    while len(chosen) < min(count, len(indices)):
        for group in by_class:
            if group and len(chosen) < count:
                chosen.append(group.pop(0))
    return chosen


def _contact_sheet(path, triples, cv2, tile=160, per_row=3):
    """Rows of (drawing | photo sketch | raw sheet) tiles; a missing sketch is red."""
    from PIL import Image
    cells = []
    for drawing, sketch, sheet in triples:
        parts = [cv2.resize(drawing[..., 0], (tile, tile), interpolation=cv2.INTER_AREA)]
        if sketch is None:
            missing = np.zeros((tile, tile, 3), np.uint8)
            missing[..., 0] = 200
            parts = [np.stack([p] * 3, -1) for p in parts] + [missing]
        else:
            parts.append(cv2.resize(sketch[..., 0], (tile, tile), interpolation=cv2.INTER_AREA))
            parts = [np.stack([p] * 3, -1) for p in parts]
        height, width = sheet.shape
        scale = tile / max(height, width)
        small = cv2.resize(sheet, (max(1, round(width * scale)), max(1, round(height * scale))),
                           interpolation=cv2.INTER_AREA)
        raw = np.full((tile, tile), 128, np.uint8)
        raw[:small.shape[0], :small.shape[1]] = small
        parts.append(np.stack([raw] * 3, -1))
        gap = np.full((tile, 4, 3), (0, 120, 255), np.uint8)
        cells.append(np.concatenate([parts[0], gap, parts[1], gap, parts[2]], axis=1))
    blank = np.full_like(cells[0], 80)
    cells += [blank] * (-len(cells) % per_row)
    rows = []
    for start in range(0, len(cells), per_row):
        row = []
        for cell in cells[start:start + per_row]:
            row += [cell, np.full((tile, 12, 3), 40, np.uint8)]
        rows += [np.concatenate(row, axis=1), np.full((8, len(row) // 2 * (cells[0].shape[1] + 12), 3),
                                                      40, np.uint8)]
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


if __name__ == "__main__":
    main()
