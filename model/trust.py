"""How far an answer can be trusted: calibrated confidence, and whether the
input looks like any of the model's classes at all. Both are fitted at each
retrain on images the head did not learn from, and stored with the version.

Calibration is temperature scaling (Guo et al., 2017): the head's
probabilities p become p^(1/T), renormalized, which is the softmax of its
logits divided by T. T is fitted on the validation split (every view of its
images), which the head's weights never saw, by the lowest negative
log-likelihood.

"None of my classes" is novelty: the cosine distance from the input's
backbone features to its K_NEAREST-th nearest training example (Sun et al.,
2022, "Out-of-distribution detection with deep nearest neighbors"). Chosen by
bench/openset.py, which measures it against the calibrated top probability
and a combination of the two (docs/PERFORMANCE.md, "Open set"). The threshold
is set the split-conformal way on the training examples' distances, each
measured against the others (leave one image out; at most THRESHOLD_ROWS of
each kind), for the kind of view that spreads most: so a new sketch of a known class is called unknown with a
probability of at most about UNKNOWN_FALSE_ALARM.
"""
import math

import numpy as np

K_NEAREST = 5
# The share of sketches of known classes the threshold lets be called unknown.
UNKNOWN_FALSE_ALARM = 0.03
# Fewer held-out rows (image views) than this leave the temperature at 1: a
# handful fits any temperature (measured: 8 images gave T = 0.05 and doubled
# the calibration error).
MIN_CALIBRATION_ROWS = 20
TEMPERATURES = np.exp(np.linspace(np.log(0.05), np.log(20), 241))
ECE_BINS = 15
# Fitting a temperature first tries every COARSE_STEP-th one, holding at
# most TEMPERATURE_CELLS (temperature, row, class) cells at once.
COARSE_STEP = 8
TEMPERATURE_CELLS = 2_000_000
# Training examples kept per class to measure novelty against: enough for a
# stable K-th neighbour, small enough that a version stays a few MB.
MAX_REFERENCE_PER_CLASS = 500
# Leave-one-out distances are computed this many rows at a time (bounded memory).
CHUNK = 512
# The threshold of a kind of view is set on at most this many of its rows
# (evenly spread over classes), each against the whole reference: a split-
# conformal quantile needs a sample, not every row, and the cost grows with
# rows x reference instead of reference squared. On the dev set (2,420
# images, 2 kinds) the threshold came out the same (0.0999), in 0.18-0.20 s
# of CPU against 0.41-0.53 s from every row.
THRESHOLD_ROWS = 1000
# What an answer holds when the version has no novelty reference (versions
# trained before it existed): unknown is never claimed.
NO_REFERENCE = {"unknown": False, "unknown_score": None}


def temperature_of(version):
    """A stored version's temperature (1 for versions trained before calibration)."""
    return version["metrics"].get("calibration", {}).get("temperature", 1.0)


def threshold_of(version):
    """A stored version's novelty threshold (None for versions trained before it)."""
    return version["metrics"].get("novelty", {}).get("threshold")


def calibrate(probabilities, temperature):
    """Probabilities (N, C) scaled by `temperature` (1 leaves them as they are)."""
    probabilities = np.asarray(probabilities, np.float64)
    if temperature == 1 or not probabilities.size:
        return probabilities
    scaled = np.exp(np.log(np.maximum(probabilities, 1e-30)) / temperature
                    - np.log(np.maximum(probabilities.max(axis=1, keepdims=True), 1e-30))
                    / temperature)
    return scaled / scaled.sum(axis=1, keepdims=True)


def fit_temperature(probabilities, labels):
    """The temperature of TEMPERATURES with the lowest negative log-likelihood
    on held-out (probabilities, class indices); 1.0 with fewer than
    MIN_CALIBRATION_ROWS. The likelihood is convex in 1/T, so one minimum:
    every COARSE_STEP-th temperature finds it to within a step either side,
    and only those are then tried one by one."""
    labels = np.asarray(labels, np.int64)
    if len(labels) < MIN_CALIBRATION_ROWS:
        return 1.0
    logs = np.log(np.maximum(np.asarray(probabilities, np.float64), 1e-30))
    coarse = np.arange(0, len(TEMPERATURES), COARSE_STEP)
    best = coarse[int(np.argmin(_losses(logs, labels, TEMPERATURES[coarse])))]
    fine = np.arange(max(0, best - COARSE_STEP), min(len(TEMPERATURES), best + COARSE_STEP + 1))
    return float(TEMPERATURES[fine[int(np.argmin(_losses(logs, labels, TEMPERATURES[fine])))]])


def _losses(logs, labels, temperatures):
    """Summed negative log-likelihood of each temperature, as `calibrate`
    scales, for log-probabilities `logs` (N, C); rows a chunk at a time."""
    chunk = max(1, TEMPERATURE_CELLS // (len(temperatures) * logs.shape[1]))
    losses = np.zeros(len(temperatures))
    for start in range(0, len(labels), chunk):
        rows = slice(start, start + chunk)
        scaled = logs[None, rows] / temperatures[:, None, None]
        scaled -= scaled.max(axis=2, keepdims=True)
        picked = np.take_along_axis(scaled, labels[None, rows, None], axis=2)[..., 0]
        loss = np.log(np.exp(scaled).sum(axis=2)) - picked
        losses += np.minimum(loss, -np.log(1e-12)).sum(axis=1)
    return losses


def calibration_error(probabilities, labels, bins=ECE_BINS):
    """Expected calibration error: the gap between confidence and accuracy,
    averaged over equal-width confidence bins weighted by their images; None
    without images."""
    labels = np.asarray(labels)
    if not len(labels):
        return None
    probabilities = np.asarray(probabilities)
    confidence = probabilities.max(axis=1)
    right = probabilities.argmax(axis=1) == labels
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    error = 0.0
    for b in np.unique(which):
        chosen = which == b
        error += chosen.mean() * abs(right[chosen].mean() - confidence[chosen].mean())
    return float(error)


def unit_rows(features):
    features = np.asarray(features, np.float32)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def reference_rows(labels, groups):
    """Indices of the training rows to keep as the novelty reference: every
    row (view) of the first MAX_REFERENCE_PER_CLASS images of each class."""
    labels, groups = np.asarray(labels), np.asarray(groups)
    kept = np.zeros(len(labels), bool)
    for label in np.unique(labels):
        images = np.unique(groups[labels == label])[:MAX_REFERENCE_PER_CLASS]
        kept |= np.isin(groups, images)
    return np.flatnonzero(kept)


def novelty(reference, features, k=K_NEAREST):
    """Cosine distance from each feature row to its k-th nearest reference row."""
    similarity = unit_rows(features) @ reference.T
    k = min(k, similarity.shape[1])
    return 1 - np.partition(similarity, -k, axis=1)[:, -k]


def fit_novelty(features, groups, kinds=None, k=K_NEAREST):
    """(reference: unit feature rows as float16, threshold) from training
    features whose rows belong to images `groups` (an image's views are one
    group). Each row's distance is measured against the other images' rows.
    With `kinds` (a view's kind per row: plain, as read from paper, ...) the
    threshold is the largest of the kinds' own: kinds spread differently (a
    paper view is a normalized drawing, so nearer its neighbours), and each
    kind of input must keep the promised false-alarm share."""
    reference = unit_rows(features)
    groups = np.asarray(groups)
    kinds = np.zeros(len(groups)) if kinds is None else np.asarray(kinds)
    threshold = max(_conformal(_left_out_distances(reference, groups, _spread(kinds == kind), k))
                    for kind in np.unique(kinds))
    return reference.astype(np.float16), threshold


def _spread(chosen):
    """At most THRESHOLD_ROWS of the chosen rows, evenly spaced among them."""
    rows = np.flatnonzero(chosen)
    if len(rows) <= THRESHOLD_ROWS:
        return rows
    return rows[np.linspace(0, len(rows) - 1, THRESHOLD_ROWS).round().astype(int)]


def _left_out_distances(reference, groups, rows, k):
    """Novelty of each of `rows` against the reference rows of other images."""
    kth = min(k, max(1, len(reference) - 1))
    distances = []
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        similarity = reference[chunk] @ reference.T
        similarity[groups[chunk, None] == groups[None, :]] = -1
        distances.append(1 - np.partition(similarity, -kth, axis=1)[:, -kth])
    return np.concatenate(distances)


def _conformal(distances):
    """The distance a new input of a known class exceeds with probability at
    most UNKNOWN_FALSE_ALARM (split conformal: the ceil((n + 1)(1 - a))-th
    smallest of n); the largest when n is too small to promise that."""
    ordered = np.sort(distances)
    rank = math.ceil((len(ordered) + 1) * (1 - UNKNOWN_FALSE_ALARM))
    return float(ordered[min(rank, len(ordered)) - 1])


def judged(reference, threshold, features):
    """[{"unknown", "unknown_score"}] per feature row: the novelty distance
    over the threshold (above 1 is further than the known classes' own
    outliers)."""
    if reference is None:
        return [dict(NO_REFERENCE) for _ in range(len(features))]
    scores = novelty(reference, features) / max(threshold, 1e-6)
    return [{"unknown": bool(s > 1), "unknown_score": round(float(s), 4)} for s in scores]
