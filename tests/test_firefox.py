"""The core flows in Firefox ESR (Gecko, not Chrome's engine), driven over
Marionette: the labeler's label, batch label, review, upload, retrain and
export, and the demo's draw-and-correct. Real HTTP, real SQLite, the real
alpha 0.25 backbone where a model is involved."""
import math
import time

import httpx
import pytest

from tests.helpers.common import artifact
from tests.helpers.demo import (CORRECT_CONTROLS, CORRECT_OPTIONS, PRESS_CLEAN, PRESS_RESULT_JS,
                                WATCH_PRESS_JS, draw_shape, first_of_top3, from_the_margin,
                                inked_from_the_edge, newest_correction, recorded_frames)
from tests.helpers.firefox import css, firefox, in_view, stroke, tap, text_of, wait_for
from tests.helpers.labeler import (SMALL_CONTROLS_JS, TRAIN_OPTIONS, every_page, labeled,
                                   png_bytes, seeded_store, served, tile_ids)

pytestmark = pytest.mark.browser


def screenshot(driver, name):
    with open(artifact(name), "wb") as f:
        f.write(driver.screenshot(format="binary", full=True))


# How far a page is wider than the window: a phone must not scroll sideways.
# (Against the window, not the screen: Firefox's screen is the virtual display.)
OVERFLOW_JS = "return document.documentElement.scrollWidth - window.innerWidth"


@pytest.mark.parametrize("width, height, pointer", [(1280, 1000, "mouse"),
                                                     (390, 844, "touch")])
def test_the_labelers_core_flows_work_in_firefox(backbone, tmp_path, width, height, pointer):
    from labeler.app import create_app
    shots = "firefox-labeler-phone" if pointer == "touch" else "firefox-labeler"
    with seeded_store(tmp_path / "firefox.db") as (path, store, train, _):
        store.add_correction(train[0], "blob", "sketch", "anonymous@10.0.0.1")
        upload = tmp_path / "new-star.png"
        upload.write_bytes(png_bytes("star", seed=77))
        with served(create_app(path, train_options=TRAIN_OPTIONS)) as url, \
                firefox(width=width, height=height) as driver:
            wide, small = {}, {}
            for where in every_page(train[1]):
                driver.navigate(url + where)
                wide[where] = driver.execute_script(OVERFLOW_JS)
                small[where] = driver.execute_script(SMALL_CONTROLS_JS)
            assert not {where: px for where, px in wide.items() if px > 0}, wide
            if pointer == "touch":
                assert not {where: c for where, c in small.items() if c}, small
            # Batch label: tick two tiles, type a class, apply.
            driver.navigate(f"{url}/images?per_page=20")
            order = tile_ids(driver.page_source)
            boxes = css(driver, ".grid .tile input[type=checkbox]")
            tap(driver, boxes[2], pointer)
            tap(driver, boxes[4], pointer)
            css(driver, "#batch-new-label")[0].send_keys("zigzag")
            tap(driver, css(driver, "#do-label")[0], pointer)
            wait_for(driver, lambda d: "Labeled 2 image(s) as zigzag." in d.page_source,
                     "batch-label message")
            assert labeled(store, [order[2], order[4]]) == {order[2]: "zigzag",
                                                            order[4]: "zigzag"}
            screenshot(driver, f"{shots}-labeled.png")
            # One image, from its own page.
            driver.navigate(f"{url}/images/{order[6]}")
            css(driver, "input[name=new_label]")[0].send_keys("wave")
            tap(driver, css(driver, "button[name=action][value=label]")[0], pointer)
            wait_for(driver, lambda d: text_of(d, "#image-label").startswith("wave"),
                     "the image's new label")
            assert labeled(store, [order[6]]) == {order[6]: "wave"}
            # Review: accept the pending correction.
            driver.navigate(f"{url}/review")
            screenshot(driver, f"{shots}-review.png")
            accept = css(driver, ".accept-one")[0]
            if pointer == "touch":
                assert min(in_view(driver, accept)[2:]) >= 44, accept.rect
            tap(driver, accept, pointer)
            wait_for(driver, lambda d: "Accepted 1 correction(s)." in d.page_source,
                     "review message")
            assert store.corrections()[0]["status"] == "accepted"
            # Upload a file through the plain form, into a class typed there.
            driver.navigate(f"{url}/capture")
            css(driver, "#upload-files")[0].send_keys(str(upload))
            css(driver, "#upload-form input[name=new_label]")[0].send_keys("star")
            tap(driver, css(driver, "#upload-submit")[0], pointer)
            wait_for(driver, lambda d: "Stored 1 new image(s)" in d.page_source,
                     "upload message")
            # Retrain, and follow its progress until the version is shown.
            before = store.live_version_id()
            driver.navigate(f"{url}/retrain")
            tap(driver, css(driver, "#retrain-button")[0], pointer)
            wait_for(driver, lambda d: text_of(d, "#job-result").startswith("Version"),
                     "retrain result", timeout=300)
            assert store.live_version_id() not in (None, before)
            screenshot(driver, f"{shots}-retrained.png")
            # Export: the page links each export, and each answers.
            driver.navigate(f"{url}/export")
            links = {a.get_attribute("id"): url + a.get_attribute("href")
                     for a in css(driver, "a[id^=export-]")}
            assert set(links) >= {"export-dataset", "export-keras", "export-labels"}
            for name in ("export-dataset", "export-labels"):
                assert httpx.get(links[name], timeout=120).status_code == 200


def test_drawing_and_correcting_in_the_demo_works_in_firefox(server):
    url, app = server
    with firefox() as driver:
        driver.navigate(url)
        canvas = wait_for(driver, lambda d: css(d, "#sketchpad canvas[data-ready]"),
                          "the sketchpad")[0]
        box = canvas.rect
        # Viewport coordinates: the canvas's page position less the scroll.
        scroll_y = driver.execute_script("return window.scrollY")
        cx = box["x"] + box["width"] / 2
        cy = box["y"] - scroll_y + box["height"] / 2
        r = min(box["width"], box["height"]) * 0.3
        ring = [(cx + r * math.cos(2 * math.pi * i / 20),
                 cy + 0.92 * r * math.sin(2 * math.pi * i / 20)) for i in range(21)]
        stroke(driver, ring[:11])
        stroke(driver, ring[10:])
        verdict = wait_for(driver, lambda d: "circle" in text_of(d, "#sketch-verdict")
                           and text_of(d, "#sketch-verdict"), "a circle verdict", timeout=120)
        assert "It's a circle" in verdict
        screenshot(driver, "firefox-demo-circle.png")
        new = css(driver, "#sketch-correct-new textarea, #sketch-correct-new input")[0]
        new.send_keys("moon")
        css(driver, "#sketch-correct-send")[0].click()
        saved = wait_for(driver, lambda d: "Saved" in text_of(d, "#sketch-correct-saved")
                         and text_of(d, "#sketch-correct-saved"), "the saved message")
        assert "moon" in saved
    [row] = [c for c in app.model.store.corrections() if c["label"] == "moon"]
    assert (row["source"], row["predicted_label"]) == ("sketch", "circle")


def star_points(x, y, width, height):
    """A five-pointed star drawn in one stroke, in the middle of a box."""
    cx, cy, r = x + width / 2, y + height / 2, min(width, height) * 0.3
    return [(cx + r * math.sin(math.pi * 4 * i / 5), cy - r * math.cos(math.pi * 4 * i / 5))
            for i in range(6)]


def card_counts(driver):
    """{class: images} as the Teach tab's cards say."""
    counts = {}
    for card in css(driver, "#class-cards button.thumbnail-item"):
        name, _, count = card.text.rpartition("·")
        counts[name.strip()] = int(count)
    return counts


def pick_card(driver, name):
    """Open the Teach tab and pick the card of class `name`; its count."""
    wait_for(driver, lambda d: [t for t in css(d, "button[role=tab]")
                                if t.text == "Teach"], "the Teach tab")[0].click()
    before = wait_for(driver, card_counts, "class cards")[name]
    [card] = [c for c in css(driver, "#class-cards button.thumbnail-item")
              if c.text.startswith(name)]
    card.click()
    wait_for(driver, lambda d: name in text_of(d, "#card-info"), "the chosen card")
    return before


def test_teaching_from_a_class_card_and_undoing_work_in_firefox(server):
    url, app = server
    with firefox() as driver:
        driver.navigate(url)
        before = pick_card(driver, "star")
        canvas = wait_for(driver, lambda d: [c for c in css(d, "#teach-pad canvas[data-ready]")
                                             if c.is_displayed()], "the Teach pad")[0]
        stroke(driver, star_points(*in_view(driver, canvas)))
        css(driver, "#add-drawing")[0].click()
        wait_for(driver, lambda d: card_counts(d).get("star") == before + 1, "one more star",
                 timeout=120)
        screenshot(driver, "firefox-demo-teach-cards.png")
        css(driver, "#undo")[0].click()
        wait_for(driver, lambda d: card_counts(d).get("star") == before, "the star taken back",
                 timeout=120)
        assert "taken back" in text_of(driver, "#teach-result")
    [taken] = list(app.model.store.db.query(
        "SELECT i.id FROM images i JOIN labels l ON l.image_id = i.id"
        " WHERE i.deleted_at IS NOT NULL AND l.labeled_by = 'teach:local'"))
    assert taken


def sketchpad_box(driver, part="canvas[data-ready]"):
    """The Draw tab's pad once it takes strokes and the page stands still (a
    model is live: while it is prepared, the banner above the pad comes and
    goes), scrolled into view: the box of its canvas (or of its `part`) in
    viewport CSS pixels (x, y, width, height)."""
    wait_for(driver, lambda d: "Model version" in text_of(d, "#model-info"), "a live model")
    canvas = wait_for(driver, lambda d: [c for c in css(d, f"#sketchpad {part}")
                                         if c.is_displayed()], "the sketchpad")[0]
    return in_view(driver, canvas)


def answered(driver):
    """The Draw tab's verdict, once it answers."""
    return wait_for(driver, lambda d: any(word in text_of(d, "#sketch-verdict") for word
                                          in ("It's a", "Not sure", "I don't know"))
                    and text_of(d, "#sketch-verdict"), "an answer", timeout=120)


def test_drawing_with_a_finger_on_a_phone_sized_window_works_in_firefox(server):
    url, _ = server
    with firefox(width=390, height=844) as driver:
        driver.navigate(url)
        x, y, width, height = sketchpad_box(driver)
        inner = driver.execute_script("return window.innerWidth")
        assert width >= 0.95 * inner, (width, inner)
        stroke(driver, star_points(x, y, width, height), pointer="touch")
        verdict = answered(driver)
        screenshot(driver, "firefox-demo-phone.png")
    assert "Draw something" not in verdict


@pytest.mark.parametrize("width, height, pointer", [(1280, 1000, "mouse"),
                                                     (390, 844, "touch")])
def test_a_stroke_begun_on_the_margin_is_drawn_in_firefox(server, monkeypatch, width,
                                                                height, pointer):
    url, app = server
    frames = recorded_frames(app.model, monkeypatch)
    with firefox(width=width, height=height) as driver:
        driver.navigate(url)
        canvas = sketchpad_box(driver)
        area = sketchpad_box(driver, ".pad-area")
        stroke(driver, from_the_margin(area, canvas), pointer=pointer)
        answered(driver)
    drawing, _ = frames[-1]
    assert inked_from_the_edge(drawing)


def test_a_class_is_added_renamed_taught_an_upload_and_deleted_in_firefox(server, tmp_path):
    url, app = server
    upload = tmp_path / "comet.png"
    draw_shape("star", seed=12, size=256).save(upload)
    with firefox() as driver:
        driver.navigate(url)
        wait_for(driver, lambda d: [t for t in css(d, "button[role=tab]")
                                    if t.text == "Teach"], "the Teach tab")[0].click()
        wait_for(driver, card_counts, "class cards")
        css(driver, "#new-class textarea, #new-class input")[0].send_keys("kite")
        css(driver, "#add-class")[0].click()
        wait_for(driver, lambda d: card_counts(d).get("kite") == 0, "the kite card")
        css(driver, "#rename-to textarea, #rename-to input")[0].send_keys("comet")
        css(driver, "#rename")[0].click()
        wait_for(driver, lambda d: "comet" in card_counts(d) and "kite" not in card_counts(d),
                 "the card renamed")
        [tab] = [t for t in css(driver, "button[role=tab]") if t.text == "Upload"]
        tab.click()
        css(driver, "#teach-files input[type=file]")[0].send_keys(str(upload))
        wait_for(driver, lambda d: "comet.png" in text_of(d, "#teach-files"), "the file")
        css(driver, "#add-files")[0].click()
        wait_for(driver, lambda d: card_counts(d).get("comet") == 1, "the uploaded example",
                 timeout=120)
        css(driver, "#undo")[0].click()
        wait_for(driver, lambda d: card_counts(d).get("comet") == 0, "the example taken back")
        css(driver, "#delete-class")[0].click()
        wait_for(driver, lambda d: "comet" not in card_counts(d), "the card deleted")
        screenshot(driver, "firefox-demo-class-deleted.png")
    assert "comet" not in {c["name"] for c in app.model.store.classes()}


# The page's camera films a canvas on which a circle is drawn again every
# 100 ms, a little moved each time (the same picture twice is stored once).
CIRCLE_CAMERA_JS = """
const canvas = document.createElement("canvas");
canvas.width = 640; canvas.height = 480;
const pen = canvas.getContext("2d");
setInterval(() => {
  pen.fillStyle = "#fff"; pen.fillRect(0, 0, 640, 480);
  pen.strokeStyle = "#000"; pen.lineWidth = 8;
  pen.beginPath();
  pen.arc(320 + 40 * Math.random(), 240 + 40 * Math.random(), 150, 0, 2 * Math.PI);
  pen.stroke();
}, 100);
const stream = canvas.captureStream(10);
navigator.mediaDevices.getUserMedia = async () => stream;
navigator.mediaDevices.enumerateDevices = async () => [
  {deviceId: "circle", kind: "videoinput", label: "circle camera", groupId: "circle"}];
"""


@pytest.mark.parametrize("width, height, pointer", [(1280, 1000, "mouse"),
                                                     (390, 844, "touch")])
def test_holding_record_adds_webcam_frames_until_let_go_in_firefox(server, monkeypatch, width,
                                                                   height, pointer):
    import demo_handlers
    url, app = server
    # Far off: only letting go can stop it within the test.
    monkeypatch.setattr(demo_handlers.settings, "record_frames", 10_000)
    with firefox(width=width, height=height) as driver:
        driver.navigate(url)
        driver.execute_script(CIRCLE_CAMERA_JS, sandbox=None)
        before = pick_card(driver, "circle")
        [tab] = [t for t in css(driver, "button[role=tab]") if t.text == "Webcam"]
        tap(driver, tab, pointer)
        tap(driver, wait_for(driver, lambda d: [b for b in css(d, "#teach-photo button")
                                                if "Access Webcam" in b.text],
                             "the webcam button")[0], pointer)
        tap(driver, wait_for(driver, lambda d: css(d, "#teach-photo button[aria-label="
                                                   "'capture photo']"), "the stream button")[0],
            pointer)
        x, y, w, h = in_view(driver, css(driver, "#record")[0])
        if pointer == "touch":
            assert min(w, h) >= 44, (w, h)
        driver.execute_script(WATCH_PRESS_JS, sandbox=None)
        held = driver.actions.sequence("pointer", "held", {"pointerType": pointer})
        held.pointer_move(int(x + w / 2), int(y + h / 2)).pointer_down().perform()
        try:
            wait_for(driver, lambda d: card_counts(d).get("circle", 0) >= before + 2,
                     "recorded frames", timeout=120)
            # A hand's wobble, off the button's text: no selection, no stop.
            wobble = driver.actions.sequence("pointer", "held", {"pointerType": pointer})
            wobble.pointer_move(int(x + w / 2) + 12, int(y + h / 2) + 20, duration=100)
            wobble.perform()
            more = card_counts(driver)["circle"] + 2
            wait_for(driver, lambda d: card_counts(d).get("circle", 0) >= more,
                     "frames recorded after the wobble", timeout=120)
            assert text_of(driver, "#record").endswith("let go to stop")
        finally:
            screenshot(driver, f"firefox-demo-record-{pointer}.png")
        driver.actions.sequence("pointer", "held", {"pointerType": pointer}).pointer_up() \
            .perform()
        # (The message may already say a frame taken just before was added.)
        wait_for(driver, lambda d: text_of(d, "#record").endswith("Hold to record"),
                 "the recording stopped")
        stopped = card_counts(driver)["circle"]
        press = driver.execute_script(PRESS_RESULT_JS, sandbox=None)
        driver.actions.release()
        # The camera keeps streaming; no more frames join the class.
        time.sleep(3)
        assert card_counts(driver)["circle"] <= stopped + 1
    assert press == PRESS_CLEAN


def sizes_of(driver, selector):
    """Width and height of each shown element `selector` matches, scrolled into view."""
    return [tuple(round(side) for side in in_view(driver, e)[2:])
            for e in css(driver, selector) if e.is_displayed()]


def test_a_wrong_answer_is_corrected_by_touch_on_a_phone_in_firefox(server):
    url, app = server
    with firefox(width=390, height=844) as driver:
        driver.navigate(url)
        stroke(driver, star_points(*sketchpad_box(driver)), pointer="touch")
        answered(driver)
        answer = first_of_top3(text_of(driver, "#sketch-label"))
        sizes = sizes_of(driver, CORRECT_CONTROLS)
        assert len(sizes) == 4 and all(min(size) >= 44 for size in sizes), sizes
        # Whatever it answered is taken as wrong: the right class is another
        # known one, picked from the list by touch, and sent with one tap.
        choice = css(driver, "#sketch-correct-choice input")[0]
        tap(driver, choice, "touch")
        options = wait_for(driver, lambda d: css(d, CORRECT_OPTIONS), "the known classes")
        sizes = sizes_of(driver, CORRECT_OPTIONS)
        assert all(min(size) >= 44 for size in sizes), sizes
        right = [o for o in options if o.get_attribute("aria-label") != answer][0]
        label = right.get_attribute("aria-label")
        tap(driver, right, "touch")
        wait_for(driver, lambda d: choice.get_property("value") == label, "the class picked")
        tap(driver, css(driver, "#sketch-correct-send")[0], "touch")
        saved = wait_for(driver, lambda d: "Saved" in text_of(d, "#sketch-correct-saved")
                         and text_of(d, "#sketch-correct-saved"), "the saved message")
        screenshot(driver, "firefox-demo-phone-correction.png")
    assert label in saved
    assert newest_correction(app.model.db_path) == (label, answer, "sketch", "pending")


def test_save_and_retrain_works_in_firefox(server):
    """Last in this module: it retrains the shared database's model."""
    url, app = server
    before = app.model.store.live_version_id()
    with firefox() as driver:
        driver.navigate(url)
        stroke(driver, star_points(*sketchpad_box(driver)))
        answered(driver)
        css(driver, "#sketch-correct-new textarea, #sketch-correct-new input")[0].send_keys("star")
        css(driver, "#sketch-correct-retrain")[0].click()
        text = wait_for(driver, lambda d: "The same drawing now" in text_of(
            d, "#sketch-correct-saved") and text_of(d, "#sketch-correct-saved"),
            "the new answer", timeout=300)
    newest = app.model.store.model_versions()[0]["id"]
    assert newest != before and f"Trained version {newest}" in text
