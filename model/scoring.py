"""What a model version says about stored images, for the labeler's grid and
its confusion-matrix drill-down. Probabilities come from the cached view-0
features and the stored NumPy head: the backbone runs only for images whose
features are not cached yet. Probabilities are calibrated, as served."""
from model.classifier import ranked
from model.features import ensure_features, feature_matrix
from model.head import NumpyHead
from model.trust import calibrate, judged, temperature_of, threshold_of

SCORE_BATCH = 2000


def _head(version):
    """The version's head with its calibration and its novelty judgement:
    features -> (the probabilities the app shows, [{"unknown",
    "unknown_score"}])."""
    head = NumpyHead(version["head"])
    temperature, threshold = temperature_of(version), threshold_of(version)
    return lambda vectors: (calibrate(head(vectors), temperature),
                            judged(head.reference, threshold, vectors))


def score_images(store, version, image_ids, on_progress=None):
    """Yield batches of (image_id, [[label, p], ...] most likely first,
    {"unknown", "unknown_score"}) for `image_ids` (images that cannot be
    preprocessed, e.g. blank ones, are left out). The training images are
    part of the novelty reference, so they are judged known."""
    alpha, size = version["config"]["alpha"], version["config"]["input_size"]
    classes = version["classes"]
    head = _head(version)
    ids = list(image_ids)
    for start in range(0, len(ids), SCORE_BATCH):
        chunk = ids[start:start + SCORE_BATCH]
        ensure_features(store, alpha, size, chunk, 1)
        vectors, found = feature_matrix(store, alpha, size, [(i, 0) for i in chunk])
        probabilities, judgements = head(vectors) if found else ([], [])
        rows = [(image_id, ranked(p, classes), judgement)
                for (image_id, _), p, judgement in zip(found, probabilities, judgements)]
        if on_progress:
            on_progress(min(start + len(chunk), len(ids)), len(ids))
        yield rows


def evaluation_rows(store):
    """[(image_id, true label)] of the images a retrain evaluates on, as the
    data stands now: the test split, or the stable holdout of train."""
    from model.train import evaluation_split
    _, eval_rows, _ = evaluation_split(store.labeled_images("train"), store.labeled_images("test"))
    return eval_rows


def confusion_cell(store, version, truth, predicted):
    """Ids of the evaluation images labeled `truth` that `version` classifies as
    `predicted` (one cell of its confusion matrix, on the current data)."""
    rows = [r for r in evaluation_rows(store) if r[1] == truth]
    if not rows:
        return []
    found = []
    for batch in score_images(store, version, [i for i, _ in rows]):
        found += [image_id for image_id, top, _ in batch if top[0][0] == predicted]
    return found
