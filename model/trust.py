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
measured against the others (leave one image out), for the kind of view that
spreads most: so a new sketch of a known class is called unknown with a
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
# Training examples kept per class to measure novelty against: enough for a
# stable K-th neighbour, small enough that a version stays a few MB.
MAX_REFERENCE_PER_CLASS = 500
# Leave-one-out distances are computed this many rows at a time (bounded memory).
CHUNK = 512
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
    """The temperature with the lowest negative log-likelihood on held-out
    (probabilities, class indices); 1.0 with fewer than MIN_CALIBRATION_ROWS."""
    labels = np.asarray(labels, np.int64)
    if len(labels) < MIN_CALIBRATION_ROWS:
        return 1.0
    rows = np.arange(len(labels))
    losses = [-np.log(np.maximum(calibrate(probabilities, t)[rows, labels], 1e-12)).mean()
              for t in TEMPERATURES]
    return float(TEMPERATURES[int(np.argmin(losses))])


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
    distances = []
    for start in range(0, len(reference), CHUNK):
        similarity = reference[start:start + CHUNK] @ reference.T
        similarity[groups[start:start + CHUNK, None] == groups[None, :]] = -1
        kth = min(k, max(1, len(reference) - 1))
        distances.append(1 - np.partition(similarity, -kth, axis=1)[:, -kth])
    distances = np.concatenate(distances)
    threshold = max(_conformal(distances[kinds == kind]) for kind in np.unique(kinds))
    return reference.astype(np.float16), threshold


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
