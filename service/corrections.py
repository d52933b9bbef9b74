"""Corrections: someone says what an image really shows. The image, the
prediction it replaces and the correction are stored together; a correction
stays pending until reviewed unless the owner sent it."""
from db.store import clean_label
from model.images import require_ink, stored_form
from service.ingest import CORRECTION_SOURCES, check_source


def record(store, image, label, source, sender, prediction=None, predict=None, accept=False):
    """Store a correction of `image` (a PIL image) to `label`.

    `prediction` is what the model answered ({"version", "label",
    "confidence", "top"}); without one, `predict(image)` is asked once the
    correction is known to be valid, and may answer None when no model can.
    Returns what was saved; `already_saved` when this sender had already
    made this very correction (it is not stored twice)."""
    label = clean_label(label or "")
    check_source(source, CORRECTION_SOURCES)
    require_ink(image)
    if prediction is None and predict is not None:
        prediction = predict(image)
    data, width, height = stored_form(image)
    correction_id, image_id, new = store.record_correction(
        {"data": data, "width": width, "height": height}, label, source, sender,
        prediction=prediction, accept=accept)
    return {"correction": correction_id, "image": image_id, "label": label,
            "predicted": prediction["label"] if prediction else None,
            "status": "accepted" if accept else "pending", "sender": sender,
            "already_saved": not new}
