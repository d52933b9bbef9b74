"""A poisoning attack: one sender's flipped labels, accepted by mistake, must
neither make a worse model live nor hide in the review queue."""
from datetime import timedelta

from db import Store, labeling
from db import store as store_module
from model.images import stored_form
from model.sketches import SHAPES, dataset
from model.train import PROMOTION_TOLERANCE, retrain
from tests.helpers.common import TEST_ALPHA, add_sketches

OPTIONS = {"alpha": TEST_ALPHA, "views": 1, "epochs": 20}
ATTACKER = "anonymous@203.0.113.9"


def test_500_flipped_labels_accepted_by_mistake_do_not_make_a_worse_model_live(
        tmp_path, backbone, monkeypatch):
    store = Store(tmp_path / "sketches.db")
    add_sketches(store, 12, seed=1)
    add_sketches(store, 8, seed=2, split="test")  # the trusted test split
    first = retrain(store, OPTIONS)
    assert first["live"] and first["test_accuracy"] >= 0.8

    # The rate limit allows 500 a day, sent 10 s apart.
    start = store_module.utcnow()
    ticks = iter(range(10**6))
    monkeypatch.setattr(store_module, "utcnow",
                        lambda: start + timedelta(seconds=10 * next(ticks)))
    for shape, image in dataset(125, seed=3):
        data, width, height = stored_form(image)
        flipped = SHAPES[(SHAPES.index(shape) + 1) % len(SHAPES)]
        store.record_correction({"data": data, "width": width, "height": height}, flipped,
                                "sketch", ATTACKER)

    rows, total = labeling.correction_queue(store, "pending", 0, 10)
    assert total == 500
    assert {r["sender"] for r in rows} == {ATTACKER} and rows[0]["sender_pending"] == 500

    store.review_corrections([c["id"] for c in store.corrections("pending")], "accepted",
                             "careless reviewer")
    poisoned = retrain(store, OPTIONS)
    assert poisoned["train_images"] == 48 + 500
    assert poisoned["test_accuracy"] < first["test_accuracy"] - PROMOTION_TOLERANCE
    assert not poisoned["live"] and store.live_version_id() == first["version"]
    # Still visible after the mistake: every accepted correction names its sender's 500.
    rows, total = labeling.correction_queue(store, "accepted", 0, 10)
    assert total == 500 and rows[0]["sender_total"] == 500
