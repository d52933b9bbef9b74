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
    from db import Store
    with configured(db=tmp_path / "fresh.db", alpha=TEST_ALPHA):
        demo.app.start()
        # While the first model trains the page says so, and keeps polling.
        assert "Preparing the first model" in demo.status()
        assert demo.on_tick()[2].active is True
        label, text, shown = demo.sketch_live_ui(sketch_value(draw_shape("star", seed=76)))
        assert label is None and "still being trained" in text and shown is None
        assert demo.app.wait_ready(timeout=300), demo.status()
        store = Store(tmp_path / "fresh.db")
        names = {c["name"]: c["images"] for c in store.classes()}
        assert names == {"circle": 40, "square": 40, "star": 40, "triangle": 40}
        live = store.model_version()
        assert live["config"]["alpha"] == TEST_ALPHA
        assert sorted(live["classes"]) == ["circle", "square", "star", "triangle"]
        assert demo.app.last_training["version"] == live["id"]
        assert "Model version" in demo.model_info() and "circle" in demo.model_info()
        assert demo.status() == ""
        assert demo.on_tick()[2].active is False  # ready: the page stops polling
        label = demo.classify_sketch(sketch_value(draw_shape("star", seed=77)))
        assert max(label, key=label.get) == "star"


def test_starter_model_classifies_fresh_generated_sketches_above_the_floor(served):
    import demo
    from model.sketches import dataset
    drawings = dataset(15, seed=9090)
    hits = 0
    for shape, image in drawings:
        label = demo.classify_sketch(sketch_value(image))
        hits += max(label, key=label.get) == shape
    accuracy = hits / len(drawings)
    print(f"starter model accuracy on {len(drawings)} fresh sketches: {accuracy:.3f}")
    assert accuracy >= STARTER_ACCURACY_FLOOR


def test_classify_returns_the_top_three_classes_with_confidences(served):
    import demo
    label = demo.classify_sketch(sketch_value(draw_shape("square", seed=5)))
    assert len(label) == 3
    assert max(label, key=label.get) == "square"
    assert all(0.0 <= p <= 1.0 for p in label.values())
    assert sum(label.values()) <= 1.0 + 1e-6


def test_blank_canvas_says_draw_something_instead_of_guessing(served):
    import demo
    white = Image.new("RGB", (400, 400), "white")
    assert demo.classify_sketch(sketch_value(white)) == demo.BLANK_LABEL
    assert demo.classify_sketch(None) == demo.BLANK_LABEL
    label, text, shown = demo.sketch_ui(sketch_value(white))
    assert label == demo.BLANK_LABEL and "Draw something" in text and shown is None


def test_transparent_sketchpad_composite_is_read_as_ink_on_white(served):
    import demo
    drawing = draw_shape("triangle", seed=12).convert("L")
    rgba = Image.new("RGBA", drawing.size, (0, 0, 0, 0))
    rgba.putalpha(Image.eval(drawing, lambda v: 255 - v))  # black strokes, clear paper
    label = demo.classify_sketch(sketch_value(rgba))
    assert max(label, key=label.get) == "triangle"


def test_low_confidence_verdict_says_unsure_and_a_confident_one_names_the_class():
    import demo
    unsure = demo.verdict({"label": "star", "confidence": demo.UNSURE_BELOW - 0.01,
                           "top": [["star", 0.59]], "version": 1})
    sure = demo.verdict({"label": "star", "confidence": 0.97, "top": [["star", 0.97]],
                         "version": 1})
    assert "Not sure" in unsure
    assert "Not sure" not in sure and "It's a **star**" in sure


def test_sketch_ui_keeps_the_prediction_shown_for_a_later_correction(served):
    import demo
    label, text, shown = demo.sketch_ui(sketch_value(draw_shape("circle", seed=3)))
    assert shown["source"] == "sketch"
    assert shown["prediction"]["label"] == "circle" == max(label, key=label.get)
    assert shown["prediction"]["version"] == served.store.live_version_id()
    assert "circle" in text


def test_anonymous_correction_stores_image_prediction_and_pending_label(served):
    import demo
    from model.images import stored_form
    image = draw_shape("circle", seed=21)
    saved = demo.correct(sketch_value(image)["composite"], "ellipse", "sketch", None)
    assert saved["status"] == "pending" and saved["predicted"] == "circle"
    store = served.store
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
    import demo
    served.owner = "alice"
    image = draw_shape("square", seed=33)
    saved = demo.correct(image, "box", "upload", request_as("alice"))
    assert saved["status"] == "accepted" and saved["sender"] == "alice"
    assert (saved["image"], "box") in served.store.labeled_images("train")
    other = demo.correct(draw_shape("square", seed=34), "box", "upload", request_as("bob"))
    assert other["status"] == "pending"


def test_correction_ui_prefers_the_typed_new_class_and_confirms_it_was_saved(served):
    import demo
    _, _, shown = demo.sketch_ui(sketch_value(draw_shape("star", seed=8)))
    message = demo.correct_ui(shown, "circle", "  sun  ", request_as(None))
    assert message.startswith("✅ Saved") and "sun" in message and "pending" in message
    assert served.store.corrections()[-1]["label"] == "sun"
    assert "classify a sketch first" in demo.correct_ui(None, "circle", "", request_as(None))


def test_invalid_class_name_is_a_gradio_error_and_nothing_is_stored(served):
    import demo
    before = served.store.count_images()
    with pytest.raises(gr.Error, match="cannot be empty"):
        demo.correct(draw_shape("star", seed=1), "   ", "sketch", None)
    assert served.store.count_images() == before
    assert served.store.corrections() == []


def test_unreadable_upload_is_a_gradio_error_saying_why(served, tmp_path):
    import demo
    bad = tmp_path / "not-an-image.png"
    bad.write_bytes(b"this is text, not a PNG")
    with pytest.raises(gr.Error, match="Not a readable image"):
        demo.classify_photo(str(bad))


def test_uploaded_file_is_classified_like_a_webcam_frame(served, tmp_path):
    import demo
    path = tmp_path / "photo.jpg"
    draw_shape("triangle", seed=44).save(path, quality=90)
    label = demo.classify_photo(str(path))
    assert max(label, key=label.get) == "triangle"
    label, text, shown = demo.webcam_ui(Image.open(path))
    assert shown["source"] == "webcam" and "triangle" in text


def test_teaching_a_new_class_and_retraining_switches_the_live_model_without_restart(served):
    import demo
    before = served.store.live_version_id()
    rng = np.random.default_rng(123)
    for _ in range(15):
        message = demo.add_example(draw_cross(rng), "cross", "sketch", request_as(None))
        assert "Added to **cross**" in message
    splits = {split: [i for i, label in served.store.labeled_images(split) if label == "cross"]
              for split in ("train", "test")}
    assert len(splits["train"]) == 12 and len(splits["test"]) == 3
    calls = []
    message = demo.retrain_now(request_as(None), progress=lambda *a, **k: calls.append(a))
    assert "It is live now" in message
    after = served.store.live_version_id()
    assert after != before
    assert calls, "retraining reported no progress"
    # The same Classifier object now serves the new version, with the new class.
    label, _, shown = demo.sketch_ui(sketch_value(draw_cross(np.random.default_rng(999))))
    assert shown["prediction"]["version"] == after
    assert max(label, key=label.get) == "cross"
    assert "cross" in demo.model_info()


def test_teaching_and_retraining_are_refused_when_shared_without_a_password(served):
    import demo
    served.exposed = True
    with pytest.raises(gr.Error, match="--auth"):
        demo.add_example(draw_shape("star", seed=2), "star", "sketch", request_as(None))
    with pytest.raises(gr.Error, match="--auth"):
        demo.retrain_now(request_as(None), progress=lambda *a, **k: None)
    assert "🔒" in demo.access_note(request_as(None))


def test_with_auth_only_the_signed_in_owner_may_teach(served):
    import demo
    served.exposed, served.owner = True, "alice"
    with pytest.raises(gr.Error, match="Only the owner"):
        demo.add_example(draw_shape("star", seed=2), "star", "sketch", request_as("mallory"))
    message = demo.add_example(draw_shape("star", seed=2), "star", "sketch", request_as("alice"))
    assert "Added to **star**" in message


def test_blank_example_or_correction_is_refused(served):
    import demo
    white = Image.new("RGB", (300, 300), "white")
    with pytest.raises(gr.Error, match="blank"):
        demo.add_example(white, "star", "sketch", request_as(None))
    with pytest.raises(gr.Error, match="blank"):
        demo.correct(white, "star", "sketch", None)


def test_auth_setting_is_user_colon_password():
    import demo
    assert demo.parse_auth("owner:pa:ss") == ("owner", "pa:ss")
    assert demo.parse_auth(None) is None and demo.parse_auth("") is None
    for bad in ("owner", "owner:", ":secret"):
        with pytest.raises(SystemExit, match="user:password"):
            demo.parse_auth(bad)


def test_page_status_tells_that_sharing_disabled_teaching_and_no_link_was_made(served):
    import demo
    served.exposed, served.share, served.share_url = True, True, None
    assert "No public share link could be made" in demo.status()
    assert "--auth" in demo.access_note(request_as(None))


@pytest.mark.slow
def test_missing_weights_page_says_what_is_missing_and_serves_no_prediction(
        tmp_path, monkeypatch):
    """alpha 0.5 weights are not on this machine; downloads are cut off as offline."""
    import demo
    from model.backbone import weights_help
    offline_downloads(monkeypatch)

    with configured(db=tmp_path / "noweights.db", alpha=0.5):
        demo.app.start(wait=True)
        assert demo.app.phase == "failed"
        page = demo.status()
        shown = re.sub(r"\\(.)", r"\1", page)  # as Markdown renders the escapes
        assert "backbone weights missing" in shown
        assert weights_help(0.5, 224) in shown  # exactly what is missing and how to provide it
        with pytest.raises(gr.Error, match="mobilenet_5_0_224_tf_no_top.h5"):
            demo.classify_sketch(sketch_value(draw_shape("circle", seed=1)))
        label, text, shown = demo.webcam_ui(draw_shape("circle", seed=1))
        assert label is None and shown is None and "missing" in text
        # Corrections are still collected for the labeler, without a prediction.
        saved = demo.correct(draw_shape("circle", seed=1), "circle", "sketch", None)
        assert saved["status"] == "pending" and saved["predicted"] is None
        assert demo.app.store.live_version_id() is None


def test_a_failed_start_recovers_by_itself_once_the_weights_are_in_place(
        backbone, tmp_path, monkeypatch, demo_app):
    import demo
    from model import backbone as backbones
    from model.errors import WeightsMissing
    from tests.helpers.common import WEIGHTS
    offline_downloads(monkeypatch)
    monkeypatch.setattr(demo, "RETRY_FAILED_START_S", 0)
    weights = Path(os.environ["KERAS_HOME"]) / "models" / WEIGHTS
    aside = tmp_path / WEIGHTS
    loaded = (backbones.load_backbone, backbones.compiled, backbones.extractor)
    sketch = sketch_value(draw_shape("circle", seed=1))
    db = copy_db(starter_template(), tmp_path / "demo.db")
    weights.rename(aside)
    try:
        for cached in loaded:
            cached.cache_clear()  # as in a fresh process
        demo.app.configure(db=db, alpha=TEST_ALPHA)
        demo.app.start(wait=True)
        assert demo.app.phase == "failed" and isinstance(demo.app.problem, WeightsMissing)
        attempt = demo.app._thread
        for _ in range(3):  # while the file is still missing, nothing is retried
            with pytest.raises(gr.Error, match=WEIGHTS):
                demo.classify_sketch(sketch)
        assert demo.app._thread is attempt and demo.app.phase == "failed"
        aside.rename(weights)
        deadline = time.monotonic() + 120
        while demo.app.phase != "ready" and time.monotonic() < deadline:
            with contextlib.suppress(gr.Error):
                demo.classify_sketch(sketch)
            time.sleep(0.2)
        assert demo.app.phase == "ready", demo.status()
        assert "circle" in demo.classify_sketch(sketch)
    finally:
        if aside.exists():
            aside.rename(weights)
