"""python -m model.train: retrain the head on every labeled train image.

Features come from the cache (only images that lack them go through the
backbone). The new version is evaluated class by class on its test images,
or for a class without any on a stable stratified holdout of its train images
(`evaluation_split`), and goes live only if it is not worse
than the live version on that same evaluation set, within PROMOTION_TOLERANCE
(--force overrides). A retrain that would learn from the very images,
labels and options of the newest version makes no copy of it and says so
(unless forced).
"""
import argparse
import hashlib
import json
import sys
import time

import numpy as np
from tqdm import tqdm

from db import Store
from db.cli import add_db_option, exit_on_error
from model.config import DEFAULTS, backbone_name, make_config
from model.errors import NotEnoughData, NothingChanged
from model import trust
from model.features import PAPER_VIEW, ensure_features, feature_matrix

HOLDOUT_FRACTION = 0.2
# A class without test images gives at least this many train images to
# evaluation, so that no class goes unmeasured for want of a test split.
MIN_HELD_OUT = 2
# Knuth's multiplicative hash (2**32 / golden ratio): image ids spread evenly
# over [0, 1), the same on every run, so the holdout is stable.
HASH_MULTIPLIER = 2654435761
# Added to ids before hashing for the validation split, so that it is not the
# holdout's first fraction again.
VALIDATION_SALT = 7919
MIN_IMAGES_PER_CLASS = 2
# "Not worse" allows this much less accuracy: two retrains on the same data
# differ by about this much (0.8 points on the dev set), while a harmful
# update (mislabeled or poisoned data) costs far more.
PROMOTION_TOLERANCE = 0.01
# Classes with fewer train images give none to the validation split (which
# calibrates, and with enough data stops training early): with a handful of
# examples each one is worth more to training. Measured on the dev set (8
# classes, 3 seeds, early stopping then at any size): at 5 a class, 0.834
# against 0.783 when one of the 5 went to validation; at 10 a class the same
# either way.
MIN_IMAGES_FOR_VALIDATION = 10
# A warm start fine-tunes a head that is already at its best validation loss
# on nearly the same data: at a quarter of the learning rate (full-rate Adam,
# its moments restarting from zero, first knocks the head off that minimum),
# for at most WARM_EPOCHS epochs, stopping after WARM_PATIENCE without a
# better validation loss. Measured on the dev set (300 a class, 3 views; 20,
# another 20, 800 new images): 0.946 / 0.945 / 0.946 test accuracy in 3 / 3 /
# 5 epochs, against 0.941 / 0.943 / 0.944 in 13 / 21 / 7 epochs at the full
# rate and patience (0.939 / 0.945 from scratch for the last two).
WARM_EPOCHS = 5
WARM_PATIENCE = 2
WARM_LEARNING_RATE_SHARE = 0.25


def retrain(store, options=None, force=False, on_progress=None, show_bar=False):
    """Train, evaluate, record a model version. Returns the result summary.

    `on_progress(stage, done, total)` is called as features are computed
    ("features") and epochs end ("training").
    """
    started = time.perf_counter()
    live = store.model_version()
    base = {k: live["config"][k] for k in ("alpha", "input_size")} if live else {}
    config = make_config(base, **(options or {}))
    alpha, size = config["alpha"], config["input_size"]
    train_rows, eval_rows, eval_source = evaluation_split(store.labeled_images("train"),
                                                store.labeled_images("test"))
    train_rows, classes, dropped = _usable(train_rows)
    fingerprint = _fingerprint(train_rows, eval_rows, config)
    if not force:
        _refuse_a_copy(store, fingerprint)
    report = _reporter(on_progress, show_bar)

    feature_started = time.perf_counter()
    computed, skipped = ensure_features(
        store, alpha, size, [i for i, _ in train_rows], config["views"],
        lambda done, total: report("features", done, total))
    more, skipped_eval = ensure_features(store, alpha, size, [i for i, _ in eval_rows], 1)
    computed += more
    feature_seconds = time.perf_counter() - feature_started
    skipped = set(skipped) | set(skipped_eval)
    train_rows = [r for r in train_rows if r[0] not in skipped]
    eval_rows = [r for r in eval_rows if r[0] not in skipped]

    x, y, groups, views = _training_arrays(store, config, train_rows, classes)
    fit_index, val_index = _validation_split(y, groups, config["validation_fraction"])
    from model.head import forward, head_to_bytes
    early_stopping = _stops_early(groups, len(classes), config)
    # A warm start saves time only when early stopping can end it after a few epochs.
    init = _warm_start(live, config, classes, x.shape[1]) if early_stopping else None
    params, probe, history = _fit(x, y, fit_index, val_index, len(classes), config,
                                  early_stopping, init, report)
    report("done", 1, 1)
    # The validation split: images the calibrated weights never saw, in every
    # view (more rows steady the fit: on the dev set, 120 held-out images gave
    # T = 1.32 from their plain views, 1.16 from all three, and the test set's
    # own best was 1.19).
    temperature = trust.fit_temperature(forward(probe, x[val_index])[0], y[val_index])
    # Novelty is measured against how known classes look plain and as photos.
    rows = trust.reference_rows(y, groups)
    rows = rows[np.isin(views[rows], (0, PAPER_VIEW))]
    reference, threshold = trust.fit_novelty(x[rows], groups[rows], views[rows])
    head_blob = head_to_bytes(params, reference)

    eval_ids = [i for i, _ in eval_rows]
    eval_labels = [label for _, label in eval_rows]
    # Read once: the live version is measured on the same rows when it shares the backbone.
    eval_vectors, _ = feature_matrix(store, alpha, size, [(i, 0) for i in eval_ids])
    probabilities = _probabilities(params, eval_vectors)
    metrics = evaluate(probabilities, classes, eval_labels)
    index = {c: i for i, c in enumerate(classes)}
    measured = [index.get(label, -1) for label in eval_labels] if len(probabilities) else []
    metrics["calibration"] = {
        "temperature": temperature, "held_out_images": len(np.unique(groups[val_index])),
        "held_out_rows": len(val_index),
        "fitted": len(val_index) >= trust.MIN_CALIBRATION_ROWS,
        "min_rows": trust.MIN_CALIBRATION_ROWS,
        "ece_before": trust.calibration_error(probabilities, measured),
        "ece": trust.calibration_error(trust.calibrate(probabilities, temperature), measured)}
    metrics["novelty"] = {"threshold": threshold, "k": trust.K_NEAREST,
                          "false_alarm": trust.UNKNOWN_FALSE_ALARM,
                          "reference_rows": len(reference)}
    metrics.update(eval_source=eval_source, history=history, warm_started=init is not None,
                   early_stopping=early_stopping,
                   epochs_run=len(history.get("loss", [])), skipped_images=sorted(skipped),
                   dropped_classes=dropped)
    live_accuracy = None
    if live is not None:
        live_accuracy = (_accuracy(live, eval_vectors, eval_labels)
                         if _same_backbone(live["config"], config)
                         else version_accuracy(store, live, eval_ids, eval_labels))
        metrics["live_accuracy_before"] = live_accuracy
    goes_live = force or promotes(metrics["accuracy"], live_accuracy)
    seconds = time.perf_counter() - started
    metrics["seconds"] = seconds
    metrics["fingerprint"] = fingerprint
    metrics["train_images"] = len(train_rows)
    version = store.add_model_version(backbone_name(alpha, size), classes, config, metrics,
                                      head_blob, live=goes_live)
    return {"version": version, "classes": classes, "train_images": len(train_rows),
            "test_images": len(eval_rows), "eval_source": eval_source,
            "test_accuracy": metrics["accuracy"], "live_accuracy_before": live_accuracy,
            "features_computed": computed, "feature_seconds": round(feature_seconds, 3),
            "views": config["views"], "epochs_run": metrics["epochs_run"],
            "warm_started": init is not None,
            "seconds": round(seconds, 3), "live": goes_live,
            "live_version": version if goes_live else live["id"]}


def _stops_early(groups, n_classes, config):
    """Whether the head stops early on the validation split: only with
    `early_stopping_per_class` train images a class on average (model.config)."""
    return len(np.unique(groups)) >= config["early_stopping_per_class"] * n_classes


def _fit(x, y, fit_index, val_index, n_classes, config, early_stopping, init, report):
    """(head, the head to calibrate on the validation split, history).

    With early stopping the head fits the other images and stops by the
    validation split, and is calibrated on it. Without, the head fits every
    image for `epochs` epochs, and a probe of the same recipe fitted without
    the validation images is calibrated on them in its place (when they are
    enough to calibrate on): its temperature is the head's. Without enough
    to calibrate on, targets are not smoothed. A warm start (`init`) is
    bounded by WARM_EPOCHS. Progress counts the epochs of both."""
    from model.head import train_head
    calibrated = len(val_index) >= trust.MIN_CALIBRATION_ROWS
    if not calibrated:
        # Label smoothing leaves a head under-confident; only a temperature undoes it.
        config = dict(config, label_smoothing=0.0)
    if init is not None:
        config = dict(config, epochs=min(config["epochs"], WARM_EPOCHS),
                      patience=min(config["patience"], WARM_PATIENCE),
                      learning_rate=config["learning_rate"] * WARM_LEARNING_RATE_SHARE)
    probing = not early_stopping and calibrated
    total = config["epochs"] * (2 if probing else 1)
    done = [0]

    def on_epoch(epoch, logs):
        done[0] += 1
        report("training", done[0], total)

    if early_stopping:
        validation = (x[val_index], y[val_index]) if len(val_index) else None
        params, history = train_head(x[fit_index], y[fit_index], n_classes, config, validation,
                                     on_epoch, init=init)
        return params, params, history
    probe = (train_head(x[fit_index], y[fit_index], n_classes, config, on_epoch=on_epoch)[0]
             if probing else None)
    params, history = train_head(x, y, n_classes, config, on_epoch=on_epoch, init=init)
    return params, (params if probe is None else probe), history


def _fingerprint(train_rows, eval_rows, config):
    """What a version learns from and is measured on: its images and labels,
    options and preprocessing, as one hash."""
    from model.features import feature_key
    what = {"train": sorted(train_rows), "eval": sorted(eval_rows), "config": config,
            "features": feature_key(config["alpha"], config["input_size"])}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()


def _refuse_a_copy(store, fingerprint):
    newest = next(iter(store.model_versions()), None)
    if newest is None or newest["metrics"].get("fingerprint") != fingerprint:
        return
    hint = "" if newest["live"] else (f" It is not live; to serve it, make version "
                                      f"{newest['id']} live (or force the retrain).")
    raise NothingChanged(
        f"Nothing changed since version {newest['id']}: the same images, labels and options, "
        f"so no new version was made.{hint} Label, correct or add images first.")


def promotes(accuracy, live_accuracy):
    """Whether a new version may replace the live one on this evidence."""
    # Without a live version or evaluation images nothing can be shown worse,
    # so the newer data wins.
    if live_accuracy is None or accuracy is None:
        return True
    return accuracy >= live_accuracy - PROMOTION_TOLERANCE


def _warm_start(live, config, classes, feature_dim):
    """The live head's weights when the new head has the very same shape and
    classes: a few epochs from there replace a training from scratch."""
    if not config["warm_start"] or live is None or live["classes"] != classes:
        return None
    if (live["config"]["head_units"] != config["head_units"]
            or not _same_backbone(live["config"], config)):
        return None
    from model.head import head_from_bytes
    params = head_from_bytes(live["head"])
    return params if params[0].shape[0] == feature_dim else None


def evaluation_split(train_rows, test_rows):
    """(train rows, evaluation rows, source), class by class: a class is
    evaluated on its test images; a class without any has a stable stratified
    part of its train images held out instead (an image is held out when its
    id hashes below HOLDOUT_FRACTION, so it stays out of training from one
    retrain to the next), at least MIN_HELD_OUT of them, when it can spare them
    and keep MIN_IMAGES_PER_CLASS to train on. A class that cannot is not
    measured. The source says which: "test", "holdout" or "test+holdout"."""
    tested = {label for _, label in test_rows}
    by_class = {}
    for row in train_rows:
        if row[1] not in tested:
            by_class.setdefault(row[1], []).append(row)
    held = set()
    for rows in by_class.values():
        if len(rows) < MIN_IMAGES_PER_CLASS + MIN_HELD_OUT:
            continue
        ranked = sorted(rows, key=lambda r: _stable_fraction(r[0]))
        chosen = [r for r in ranked if _stable_fraction(r[0]) < HOLDOUT_FRACTION]
        held |= {r[0] for r in (chosen if len(chosen) >= MIN_HELD_OUT
                                else ranked[:MIN_HELD_OUT])}
    eval_rows = list(test_rows) + [r for r in train_rows if r[0] in held]
    source = "+".join(name for name, used in (("test", test_rows), ("holdout", held)) if used)
    return [r for r in train_rows if r[0] not in held], eval_rows, source or "none"


def _stable_fraction(image_id):
    return (image_id * HASH_MULTIPLIER) % 2**32 / 2**32


def _usable(train_rows):
    counts = {}
    for _, label in train_rows:
        counts[label] = counts.get(label, 0) + 1
    classes = sorted(c for c, n in counts.items() if n >= MIN_IMAGES_PER_CLASS)
    dropped = sorted(set(counts) - set(classes))
    if len(classes) < 2:
        raise NotEnoughData(
            f"Training needs at least 2 classes with {MIN_IMAGES_PER_CLASS} or more labeled "
            f"train images each; found {len(classes)} ({len(train_rows)} labeled images).")
    kept = set(classes)
    return [r for r in train_rows if r[1] in kept], classes, dropped


def _training_arrays(store, config, rows, classes):
    index = {c: i for i, c in enumerate(classes)}
    labels = dict(rows)
    x, found = feature_matrix(store, config["alpha"], config["input_size"],
                              [(i, view) for i, _ in rows for view in range(config["views"])])
    groups = np.asarray([i for i, _ in found])
    views = np.asarray([view for _, view in found])
    return x, np.asarray([index[labels[i]] for i in groups], dtype=np.int64), groups, views


def _validation_split(y, groups, fraction):
    """Indices for fitting and for early stopping; every view of an image stays
    on one side so validation never sees an augmented copy of a training image."""
    validation = np.zeros(len(y), dtype=bool)
    for label in np.unique(y):
        images = np.unique(groups[y == label])
        if len(images) < MIN_IMAGES_FOR_VALIDATION:
            continue
        ranked = sorted(images, key=lambda i: _stable_fraction(int(i) + VALIDATION_SALT))
        held = ranked[:max(1, int(round(len(images) * fraction)))]
        validation |= np.isin(groups, held)
    return np.flatnonzero(~validation), np.flatnonzero(validation)


def _same_backbone(one, other):
    return backbone_name(one["alpha"], one["input_size"]) == backbone_name(
        other["alpha"], other["input_size"])


def _probabilities(params, vectors):
    from model.head import forward
    return forward(params, vectors)[0] if len(vectors) else np.zeros((0, 0), np.float32)


def _accuracy(version, vectors, labels):
    """Accuracy of a stored version on feature rows of its backbone and their labels."""
    if not len(labels):
        return None
    from model.head import head_from_bytes
    probabilities = _probabilities(head_from_bytes(version["head"]), vectors)
    return evaluate(probabilities, version["classes"], labels)["accuracy"]


def version_accuracy(store, version, image_ids, labels):
    """Accuracy of a stored model version on these labeled images."""
    if not image_ids:
        return None
    alpha, size = version["config"]["alpha"], version["config"]["input_size"]
    ensure_features(store, alpha, size, image_ids, 1)
    vectors, found = feature_matrix(store, alpha, size, [(i, 0) for i in image_ids])
    truth = dict(zip(image_ids, labels))
    return _accuracy(version, vectors, [truth[i] for i, _ in found])


def evaluate(probabilities, classes, labels):
    """Accuracy, per-class accuracy, evaluation images per class, the classes
    with none (not measured) and a confusion matrix (rows: truth)."""
    names = list(classes) + sorted(set(labels) - set(classes))
    index = {c: i for i, c in enumerate(names)}
    matrix = np.zeros((len(names), len(names)), dtype=np.int64)
    predicted = np.argmax(probabilities, axis=1) if len(labels) else []
    for truth, guess in zip(labels, predicted):
        matrix[index[truth], guess] += 1
    totals = matrix.sum(axis=1)
    per_class = {name: (float(matrix[i, i] / totals[i]) if totals[i] else None)
                 for i, name in enumerate(names)}
    accuracy = float(np.trace(matrix) / totals.sum()) if totals.sum() else None
    return {"accuracy": accuracy, "per_class": per_class,
            "eval_counts": {name: int(totals[i]) for i, name in enumerate(names)},
            "unmeasured": [name for i, name in enumerate(names) if not totals[i]],
            "confusion": {"labels": names, "matrix": matrix.tolist()},
            "eval_images": int(totals.sum())}


def _reporter(on_progress, show_bar):
    bars = {}

    def report(stage, done, total):
        if on_progress:
            on_progress(stage, done, total)
        if not show_bar:
            return
        if stage == "done":
            for bar in bars.values():
                bar.close()
            return
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=stage, unit="img" if stage == "features"
                                     else "epoch", file=sys.stderr, leave=False)
        bar.n = done
        bar.refresh()
    return report


# What `--flag VALUE` accepts for a boolean option, in any case.
TRUE_WORDS = ("true", "yes", "1")
FALSE_WORDS = ("false", "no", "0")


def _boolean(text):
    word = text.lower()
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise argparse.ArgumentTypeError(
        f"expected one of {', '.join(TRUE_WORDS + FALSE_WORDS)}, not {text!r}")


class BooleanOption(argparse.BooleanOptionalAction):
    """--flag and --no-flag, and --flag VALUE for scripts that pass one value
    (a bare `type=bool` would read "False" as true, as any non-empty string)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, type=_boolean, **kwargs)
        self.nargs = "?"
        self.metavar = "BOOL"

    def __call__(self, parser, namespace, values, option_string=None):
        negative = option_string.startswith("--no-")
        if negative and values is not None:
            raise argparse.ArgumentError(self, f"{option_string} takes no value")
        setattr(namespace, self.dest, not negative and (values is None or values))


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m model.train", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_db_option(parser)
    parser.add_argument("--force", action="store_true",
                        help="make the new version live even if it is worse, and train even "
                             "when nothing changed since the newest version")
    for key, value in DEFAULTS.items():
        flag = "--" + key.replace("_", "-")
        default = f"(default: {value}" + (", or the live version's" if key in ("alpha", "input_size")
                                          else "") + ")"
        if isinstance(value, bool):
            parser.add_argument(flag, action=BooleanOption, help=(
                f"BOOL: {'/'.join(TRUE_WORDS)} or {'/'.join(FALSE_WORDS)}; {flag} alone means "
                f"true, --no-{flag[2:]} (no BOOL) false {default}"))
        elif isinstance(value, list):
            parser.add_argument(flag, type=lambda s: [int(p) for p in s.split(",")],
                                help=f"comma-separated (default: {','.join(map(str, value))})")
        else:
            parser.add_argument(flag, type=type(value), help=default)
    return parser


def parse(argv=None):
    """The command line's (arguments, training options given on it)."""
    args = _parser().parse_args(argv)
    return args, {k: getattr(args, k) for k in DEFAULTS if getattr(args, k) is not None}


def main(argv=None):
    args, options = parse(argv)
    with exit_on_error():
        result = retrain(Store(args.db), options, force=args.force, show_bar=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
