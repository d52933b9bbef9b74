"""The demo's handler functions called directly: real alpha 0.25 model, real SQLite file."""
import contextlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from tests.helpers.common import ROOT, TEST_ALPHA, copy_db
from tests.helpers.demo import (configured, draw_cross, draw_shape, offline_downloads, serving,
                                sketch_value, starter_template)

# Measured on generated sketches the model never saw; the floor leaves room
# for a few hard drawings (the starter model scores ~100% here).
STARTER_ACCURACY_FLOOR = 0.9


@pytest.fixture
def served(backbone, tmp_path):
    """The demo serving a copy of the trained starter database."""
    with serving(copy_db(starter_template(), tmp_path / "demo.db")) as app:
        yield app


def request_as(username):
    return gr.Request(username=username)


@pytest.mark.slow
def test_importing_demo_builds_the_page_without_tensorflow_or_a_database(tmp_path):
    db = tmp_path / "never.db"
    code = ("import sys, demo\n"
            "assert demo.demo.__class__.__name__ == 'Blocks'\n"
            "heavy = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
            "assert not heavy, heavy\n"
            "print('ok')\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=300, env={**os.environ, "SKETCHLAB_DB": str(db)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"
    assert not db.exists()


def test_fresh_database_is_seeded_trained_and_served_by_the_starter(backbone, tmp_path):
    import demo
    import demo_handlers as handlers
    from db import Store
    with configured(db=tmp_path / "fresh.db", alpha=TEST_ALPHA):
        handlers.app.model.start()
        # While the first model trains the page says so, and keeps polling.
        assert "Preparing the first model" in handlers.status()
        assert handlers.page_state(demo.ui)[demo.ui.timer].active is True
        label, text, shown, _ = handlers.sketch_live_ui(sketch_value(draw_shape("star", seed=76)))
        assert label is None and "still being trained" in text and shown is None
        assert handlers.app.model.wait_ready(timeout=300), handlers.status()
        store = Store(tmp_path / "fresh.db")
        names = {c["name"]: c["images"] for c in store.classes()}
        assert names == {"circle": 40, "square": 40, "star": 40, "triangle": 40}
        live = store.model_version()
        assert live["config"]["alpha"] == TEST_ALPHA
        assert sorted(live["classes"]) == ["circle", "square", "star", "triangle"]
        assert handlers.app.model.last_training["version"] == live["id"]
        assert "Model version" in handlers.model_info() and "circle" in handlers.model_info()
        assert handlers.status() == ""
        assert handlers.page_state(demo.ui)[demo.ui.timer].active is False  # ready: the page stops polling
        label = handlers.classify_sketch(sketch_value(draw_shape("star", seed=77)))
        assert max(label, key=label.get) == "star"


def test_starter_model_classifies_fresh_generated_sketches_above_the_floor(served):
    import demo_handlers as handlers
    from model.sketches import dataset
    drawings = dataset(15, seed=9090)
    hits = 0
    for shape, image in drawings:
        label = handlers.classify_sketch(sketch_value(image))
        hits += max(label, key=label.get) == shape
    accuracy = hits / len(drawings)
    print(f"starter model accuracy on {len(drawings)} fresh sketches: {accuracy:.3f}")
    assert accuracy >= STARTER_ACCURACY_FLOOR


def test_classify_returns_the_top_three_classes_with_confidences(served):
    import demo_handlers as handlers
    label = handlers.classify_sketch(sketch_value(draw_shape("square", seed=5)))
    assert len(label) == 3
    assert max(label, key=label.get) == "square"
    assert all(0.0 <= p <= 1.0 for p in label.values())
    assert sum(label.values()) <= 1.0 + 1e-6


def test_blank_canvas_says_draw_something_instead_of_guessing(served):
    import demo_handlers as handlers
    white = Image.new("RGB", (400, 400), "white")
    assert handlers.classify_sketch(sketch_value(white)) == handlers.BLANK_LABEL
    assert handlers.classify_sketch(None) == handlers.BLANK_LABEL
    label, text, shown, _ = handlers.sketch_ui(sketch_value(white))
    assert label == handlers.BLANK_LABEL and "Draw something" in text and shown is None


def test_transparent_sketchpad_composite_is_read_as_ink_on_white(served):
    import demo_handlers as handlers
    drawing = draw_shape("triangle", seed=12).convert("L")
    rgba = Image.new("RGBA", drawing.size, (0, 0, 0, 0))
    rgba.putalpha(Image.eval(drawing, lambda v: 255 - v))  # black strokes, clear paper
    label = handlers.classify_sketch(sketch_value(rgba))
    assert max(label, key=label.get) == "triangle"


def test_low_confidence_verdict_says_unsure_and_a_confident_one_names_the_class():
    import demo_handlers as handlers
    unsure = handlers.verdict({"label": "star", "confidence": handlers.settings.unsure_below - 0.01,
                           "top": [["star", 0.59]], "version": 1})
    sure = handlers.verdict({"label": "star", "confidence": 0.97, "top": [["star", 0.97]],
                         "version": 1})
    assert "Not sure" in unsure
    assert "Not sure" not in sure and "It's a **star**" in sure


def test_the_header_names_the_classes_the_accuracy_leaves_out(monkeypatch):
    import demo_handlers as handlers
    live = {"id": 4, "classes": ["circle", "house", "star"], "backbone": "b",
            "metrics": {"accuracy": 1.0, "eval_images": 41, "eval_source": "test",
                        "eval_counts": {"circle": 40, "house": 1, "star": 0}}}
    store = type("Store", (), {"model_version": lambda self: live})()
    monkeypatch.setattr(handlers.app, "model", type("Model", (), {"store": store})())
    monkeypatch.setattr(handlers, "review_note", lambda: "")
    text = handlers.model_info()
    assert "test accuracy 100.0% on 41 test images (circle 40, house 1)" in text
    assert "**not measured: star**" in text


def test_the_header_counts_corrections_waiting_and_links_the_labeler_on_this_computer(
        tmp_path, monkeypatch):
    import demo_handlers as handlers
    from db import Store
    from tests.helpers.common import add_sketches
    store = Store(tmp_path / "demo.db")
    ids = add_sketches(store, 1, seed=1)
    monkeypatch.setattr(handlers.app, "model", type("Model", (), {"store": store})())
    monkeypatch.setattr(handlers.settings, "labeler_url", "http://127.0.0.1:9999/")
    assert "waiting" not in handlers.model_info()
    for image_id in ids[:3]:
        store.add_correction(image_id, "house", "sketch", "anonymous@10.0.0.1")
    local = handlers.model_info()
    assert "[3 corrections waiting for review in the labeler](http://127.0.0.1:9999/review)" \
        in local
    monkeypatch.setattr(handlers.app.access, "exposed", True)
    shared = handlers.model_info()
    assert "3 corrections waiting for review" in shared and "127.0.0.1" not in shared
    store.close()


def test_teaching_without_a_class_says_why_instead_of_raising(tmp_path, monkeypatch):
    import demo_handlers as handlers
    from db import Store
    store = Store(tmp_path / "demo.db")
    monkeypatch.setattr(handlers.app, "model", type("Model", (), {"store": store})())
    for label in (None, "", "   "):
        message, _, _ = handlers.teach_sketch_ui(
            {"composite": draw_shape("star", seed=2)}, label, request_as(None))
        assert message.startswith("⚠️ Not added:") and "class" in message.lower(), message
    message, _, _ = handlers.teach_photo_ui(None, "star", request_as(None))
    assert message == "⚠️ Not added: Draw or snap an example first."
    assert store.count_images() == 0
    store.close()


def test_the_teach_tab_says_what_a_retrain_learns_from_and_what_waits(tmp_path, monkeypatch):
    import demo_handlers as handlers
    from db import Store
    from tests.helpers.common import add_sketches
    store = Store(tmp_path / "demo.db")
    ids = add_sketches(store, 2, seed=1, shapes=["circle", "star"])
    monkeypatch.setattr(handlers.app, "model", type("Model", (), {"store": store})())
    assert handlers.train_plan() == ("**Retrain now** learns from 4 labeled images: "
                                     "circle 2, star 2.")
    store.add_correction(ids[0], "moon", "sketch", "anonymous@10.0.0.1")
    assert handlers.train_plan().endswith(
        " 1 correction waits for review and is not used until accepted in the labeler.")
    store.close()


def test_an_input_unlike_every_class_is_answered_i_dont_know_with_the_nearest_classes():
    import demo_handlers as handlers
    text = handlers.verdict({"label": "star", "confidence": 0.97, "version": 1,
                             "top": [["star", 0.97], ["house", 0.02], ["c*t", 0.01]],
                             "unknown": True, "unknown_score": 1.6})
    assert "I don't know this one" in text and "It's a" not in text
    assert "**star**" in text and "**house**" in text and "**c\\*t**" in text
    # It offers to add the drawing as a new class, in the box beside the answer.
    assert "**or a new class**" in text and "Teach tab" in text


def test_the_first_model_reads_the_ways_people_draw_these_shapes(served):
    from model.sketches import STYLES, draw
    wrong, unknown = [], []
    for shape, styles in STYLES.items():
        for style in styles:
            for seed in range(4):
                image = draw(shape, np.random.default_rng(7000 + seed), style=style)
                answer = served.model.classify(image)
                if answer["label"] != shape:
                    wrong.append((shape, style, seed, answer["label"]))
                unknown += [(shape, style, seed)] if answer["unknown"] else []
    # 44 drawings never seen in training: a one-stroke star is not a triangle.
    assert len(wrong) <= 2, wrong
    # Measured: 5, all one small drawing with thick strokes (seed 3), rarer
    # than the 30 starter drawings of a class can cover.
    assert len(unknown) <= 6, unknown


def test_sketch_ui_keeps_the_prediction_shown_for_a_later_correction(served):
    import demo_handlers as handlers
    label, text, shown, _ = handlers.sketch_ui(sketch_value(draw_shape("circle", seed=3)))
    assert shown["source"] == "sketch"
    assert shown["prediction"]["label"] == "circle" == max(label, key=label.get)
    assert shown["prediction"]["version"] == served.model.store.live_version_id()
    assert "circle" in text


def test_the_same_correction_sent_twice_is_stored_once(served):
    import demo_handlers as handlers
    image = draw_shape("triangle", seed=44)
    first = handlers.correct(image, "wedge", "sketch", None)
    again = handlers.correct(image, "wedge", "sketch", None)
    rows = [c for c in served.model.store.corrections() if c["label"] == "wedge"]
    assert len(rows) == 1 and again["correction"] == first["correction"] == rows[0]["id"]
    assert "Already saved" in handlers.correction_message(again)
    # Another label for the same drawing is another correction.
    assert handlers.correct(image, "arrow", "sketch", None)["correction"] != rows[0]["id"]


def test_a_cleared_canvas_leaves_no_answer_nothing_to_correct_and_no_message():
    import demo_handlers as handlers
    label, text, kept, seen, choice, new, saved = handlers.cleared_sketch()
    assert label == handlers.BLANK_LABEL and "Draw something" in text
    assert kept is seen is choice is None and new == saved == ""
    assert "Nothing to correct yet" in handlers.correct_ui(kept, "star", "", None)


def test_anonymous_correction_stores_image_prediction_and_pending_label(served):
    import demo_handlers as handlers
    from model.images import stored_form
    image = draw_shape("circle", seed=21)
    saved = handlers.correct(sketch_value(image)["composite"], "ellipse", "sketch", None)
    assert saved["status"] == "pending" and saved["predicted"] == "circle"
    store = served.model.store
    [row] = [c for c in store.corrections() if c["id"] == saved["correction"]]
    assert row["label"] == "ellipse" and row["status"] == "pending"
    assert row["source"] == "sketch" and row["sender"] == "anonymous"
    assert row["predicted_label"] == "circle" and row["prediction_id"] is not None
    stored = store.image(row["image_id"])
    assert stored["data"] == stored_form(image)[0]
    assert stored["source"] == "sketch"
    # Pending: the image is not labeled until someone reviews it.
    assert row["image_id"] not in {i for i, _ in store.labeled_images("train")}


def test_owner_correction_is_accepted_at_once_and_labels_the_image(served):
    import demo_handlers as handlers
    served.access.owner = "alice"
    image = draw_shape("square", seed=33)
    saved = handlers.correct(image, "box", "upload", request_as("alice"))
    assert saved["status"] == "accepted" and saved["sender"] == "alice"
    assert (saved["image"], "box") in served.model.store.labeled_images("train")
    other = handlers.correct(draw_shape("square", seed=34), "box", "upload", request_as("bob"))
    assert other["status"] == "pending"


def test_correction_ui_prefers_the_typed_new_class_and_confirms_it_was_saved(served):
    import demo_handlers as handlers
    _, _, shown, _ = handlers.sketch_ui(sketch_value(draw_shape("star", seed=8)))
    message = handlers.correct_ui(shown, "circle", "  sun  ", request_as(None))
    assert message.startswith("✅ Saved") and "sun" in message and "pending" in message
    assert served.model.store.corrections()[-1]["label"] == "sun"
    assert "classify a sketch first" in handlers.correct_ui(None, "circle", "", request_as(None))


def test_invalid_class_name_is_a_gradio_error_and_nothing_is_stored(served):
    import demo_handlers as handlers
    before = served.model.store.count_images()
    with pytest.raises(gr.Error, match="cannot be empty"):
        handlers.correct(draw_shape("star", seed=1), "   ", "sketch", None)
    assert served.model.store.count_images() == before
    assert served.model.store.corrections() == []


def test_unreadable_upload_is_a_gradio_error_saying_why(served, tmp_path):
    import demo_handlers as handlers
    bad = tmp_path / "not-an-image.png"
    bad.write_bytes(b"this is text, not a PNG")
    with pytest.raises(gr.Error, match="Not a readable image"):
        handlers.classify_photo(str(bad))


def test_uploaded_file_is_classified_like_a_webcam_frame(served, tmp_path):
    import demo_handlers as handlers
    path = tmp_path / "photo.jpg"
    draw_shape("triangle", seed=44).save(path, quality=90)
    label = handlers.classify_photo(str(path))
    assert max(label, key=label.get) == "triangle"
    label, text, shown, seen = handlers.webcam_ui(Image.open(path))
    assert shown["source"] == "webcam" and "triangle" in text


def test_the_webcam_and_upload_views_show_what_the_model_sees(served, tmp_path):
    """A small sketch in a corner of a large photo: the model sees it cropped
    to the ink and scaled to its input size, and the page shows exactly that."""
    import demo_handlers as handlers
    from model.images import preprocess
    photo = Image.new("RGB", (1200, 900), "white")
    photo.paste(draw_shape("triangle", seed=45, size=200), (40, 650))
    label, text, kept, seen = handlers.webcam_ui(photo)
    assert "triangle" in text and seen is kept["seen"]
    assert seen.size == (224, 224)
    assert np.array_equal(np.asarray(seen), preprocess(photo, 224, keep_grey=True)[..., 0])
    ink = np.asarray(seen) < 128
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    assert rows[-1] - rows[0] > 150 or cols[-1] - cols[0] > 150  # filled, not a dot
    path = tmp_path / "photo.png"
    photo.save(path)
    view, _, _, kept, seen = handlers.uploaded_ui(str(path))
    assert seen is kept["seen"] and seen.size == (224, 224)
    assert handlers.keep_frame(kept)[4] is seen


def test_teaching_a_new_class_and_retraining_switches_the_live_model_without_restart(served):
    import demo_handlers as handlers
    before = served.model.store.live_version_id()
    rng = np.random.default_rng(123)
    for _ in range(15):
        message = handlers.add_example(draw_cross(rng), "cross", "sketch", request_as(None))
        assert "Added to **cross**" in message
    splits = {split: [i for i, label in served.model.store.labeled_images(split) if label == "cross"]
              for split in ("train", "test")}
    assert len(splits["train"]) == 12 and len(splits["test"]) == 3
    calls = []
    message = handlers.retrain_now(request_as(None), progress=lambda *a, **k: calls.append(a))
    assert "It is live now" in message
    after = served.model.store.live_version_id()
    assert after != before
    assert calls, "retraining reported no progress"
    # The same Classifier object now serves the new version, with the new class.
    label, _, shown, _ = handlers.sketch_ui(sketch_value(draw_cross(np.random.default_rng(999))))
    assert shown["prediction"]["version"] == after
    assert max(label, key=label.get) == "cross"
    assert "cross" in handlers.model_info()


def test_teaching_and_retraining_are_refused_when_shared_without_a_password(served):
    import demo_handlers as handlers
    served.access.exposed = True
    with pytest.raises(gr.Error, match="--auth"):
        handlers.add_example(draw_shape("star", seed=2), "star", "sketch", request_as(None))
    with pytest.raises(gr.Error, match="--auth"):
        handlers.retrain_now(request_as(None), progress=lambda *a, **k: None)
    assert "🔒" in handlers.access_note(request_as(None))


def test_with_auth_only_the_signed_in_owner_may_teach(served):
    import demo_handlers as handlers
    served.access.exposed, served.access.owner = True, "alice"
    with pytest.raises(gr.Error, match="Only the owner"):
        handlers.add_example(draw_shape("star", seed=2), "star", "sketch", request_as("mallory"))
    message = handlers.add_example(draw_shape("star", seed=2), "star", "sketch", request_as("alice"))
    assert "Added to **star**" in message


def test_a_correction_naming_an_unknown_source_is_refused_not_rewritten(served):
    import demo_handlers as handlers
    before = served.model.store.count_images()
    with pytest.raises(gr.Error, match="Unknown source 'import'"):
        handlers.correct(draw_shape("star", seed=3), "star", "import", None)
    assert served.model.store.count_images() == before


def test_blank_example_or_correction_is_refused(served):
    import demo_handlers as handlers
    white = Image.new("RGB", (300, 300), "white")
    with pytest.raises(gr.Error, match="blank"):
        handlers.add_example(white, "star", "sketch", request_as(None))
    with pytest.raises(gr.Error, match="blank"):
        handlers.correct(white, "star", "sketch", None)


def test_auth_setting_is_user_colon_password():
    import demo
    assert demo.parse_auth("owner:pa:ss") == ("owner", "pa:ss")
    assert demo.parse_auth(None) is None and demo.parse_auth("") is None
    for bad in ("owner", "owner:", ":secret"):
        with pytest.raises(SystemExit, match="user:password"):
            demo.parse_auth(bad)


def test_page_status_tells_that_sharing_disabled_teaching_and_no_link_was_made(served):
    import demo_handlers as handlers
    served.access.exposed, served.share, served.share_url = True, True, None
    assert "No public share link could be made" in handlers.status()
    assert "--auth" in handlers.access_note(request_as(None))


@pytest.mark.slow
def test_missing_weights_page_says_what_is_missing_and_serves_no_prediction(
        tmp_path, monkeypatch):
    """alpha 0.5 weights are not on this machine; downloads are cut off as offline."""
    import demo_handlers as handlers
    from model.backbone import weights_help
    offline_downloads(monkeypatch)

    with configured(db=tmp_path / "noweights.db", alpha=0.5):
        handlers.app.model.start(wait=True)
        assert handlers.app.model.phase == "failed"
        page = handlers.status()
        shown = re.sub(r"\\(.)", r"\1", page)  # as Markdown renders the escapes
        assert "backbone weights missing" in shown
        assert weights_help(0.5, 224) in shown  # exactly what is missing and how to provide it
        with pytest.raises(gr.Error, match="mobilenet_5_0_224_tf_no_top.h5"):
            handlers.classify_sketch(sketch_value(draw_shape("circle", seed=1)))
        label, text, shown, seen = handlers.webcam_ui(draw_shape("circle", seed=1))
        assert label is None and shown is None and seen is None and "missing" in text
        # Corrections are still collected for the labeler, without a prediction.
        saved = handlers.correct(draw_shape("circle", seed=1), "circle", "sketch", None)
        assert saved["status"] == "pending" and saved["predicted"] is None
        assert handlers.app.model.store.live_version_id() is None


def test_a_failed_start_recovers_by_itself_once_the_weights_are_in_place(
        backbone, tmp_path, monkeypatch, demo_app):
    import demo_handlers as handlers
    from model import backbone as backbones
    from service import lifecycle
    from model.errors import WeightsMissing
    from tests.helpers.common import WEIGHTS
    offline_downloads(monkeypatch)
    monkeypatch.setattr(lifecycle, "RETRY_FAILED_START_S", 0)
    weights = Path(os.environ["KERAS_HOME"]) / "models" / WEIGHTS
    aside = tmp_path / WEIGHTS
    loaded = (backbones.load_backbone, backbones.compiled, backbones.extractor)
    sketch = sketch_value(draw_shape("circle", seed=1))
    db = copy_db(starter_template(), tmp_path / "demo.db")
    weights.rename(aside)
    try:
        for cached in loaded:
            cached.cache_clear()  # as in a fresh process
        handlers.app.configure(db=db, alpha=TEST_ALPHA)
        handlers.app.model.start(wait=True)
        assert handlers.app.model.phase == "failed"
        assert isinstance(handlers.app.model.problem, WeightsMissing)
        attempt = handlers.app.model.jobs.snapshot()["id"]
        for _ in range(3):  # while the file is still missing, nothing is retried
            with pytest.raises(gr.Error, match=WEIGHTS):
                handlers.classify_sketch(sketch)
        assert handlers.app.model.jobs.snapshot()["id"] == attempt
        assert handlers.app.model.phase == "failed"
        aside.rename(weights)
        deadline = time.monotonic() + 120
        while handlers.app.model.phase != "ready" and time.monotonic() < deadline:
            with contextlib.suppress(gr.Error):
                handlers.classify_sketch(sketch)
            time.sleep(0.2)
        assert handlers.app.model.phase == "ready", handlers.status()
        assert "circle" in handlers.classify_sketch(sketch)
    finally:
        if aside.exists():
            aside.rename(weights)
