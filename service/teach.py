"""Teaching as the application sees it: a card per class (its counts and
newest examples), examples added, uploaded and taken back, class edits, the
waiting corrections an owner accepts before training, and what a training
changed for each class. The demo's Teach tab is a layout over these."""
import io

from PIL import Image, ImageOps

from db import labeling
from model.errors import BadImage
from model.images import decode
from service import ingest

CARD_EXAMPLES = 4  # newest examples on a card, as a 2x2 mosaic
CARD_SIDE = 160


def cards(store, examples=CARD_EXAMPLES):
    """Every class by name with its live counts (`images`, `train`, `test`)
    and its newest example ids (`recent`)."""
    recent = labeling.recent_examples(store, examples)
    return [{**c, "recent": recent.get(c["name"], [])} for c in labeling.class_summary(store)]


def card_picture(store, image_ids, side=CARD_SIDE):
    """A card's face: its newest examples in a 2x2 grid, light grey where
    there are fewer (an empty class is a grey square)."""
    card = Image.new("RGB", (side, side), (236, 236, 236))
    cell = side // 2
    for n, (_, data) in enumerate(store.image_data(list(image_ids)[:CARD_EXAMPLES])):
        card.paste(thumbnail(data, cell - 4), ((n % 2) * cell + 2, (n // 2) * cell + 2))
    return card


def thumbnail(data, side):
    """Stored image bytes -> an RGB square of `side` pixels, the image
    centred on white."""
    return ImageOps.pad(Image.open(io.BytesIO(data)).convert("RGB"), (side, side),
                        color="white")


def add_files(store, files, label, labeled_by):
    """Uploaded image files, each one taught example of `label` (the test
    split gets its share as for drawn examples). `files` are (name, bytes).
    Returns (added results, [(name, why not)]); BadImage when none was added."""
    added, errors = [], []
    budget = ingest.PixelBudget()
    for name, data in files:
        try:
            added.append(ingest.add_example(store, decode(budget.spend(data)), label,
                                            "upload", labeled_by))
        except (BadImage, ingest.TooLarge) as error:
            errors.append((name, str(error)))
    if not added:
        raise BadImage("No image could be added: " + "; ".join(
            f"{name}: {why}" for name, why in errors[:5]))
    return added, errors


def take_back(store, image_id):
    """Undo one added example: it leaves training (a soft delete the
    labeler can restore). Returns whether it was still there."""
    return bool(labeling.delete_images(store, [image_id]))


def accept_waiting(store, reviewer, limit):
    """Accept the oldest `limit` pending corrections at once, all or none
    (their images take the corrected labels). Returns how many."""
    ids = labeling.pending_ids(store, limit)
    if ids:
        store.review_corrections(ids, "accepted", reviewer)
    return len(ids)


def class_changes(before, after):
    """What a training changed, class by class: [(class, accuracy before or
    None, accuracy after or None)] from two versions' metrics (`before` None:
    no earlier version). A class is listed when the new version knows it."""
    old = (before or {}).get("per_class", {})
    return [(name, old.get(name), accuracy)
            for name, accuracy in (after or {}).get("per_class", {}).items()]
