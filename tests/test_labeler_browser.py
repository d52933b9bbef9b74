"""The labeler's JavaScript flows in a real browser (Debian's Chromium driven
by Playwright) against the app served over real HTTP by uvicorn.

Skips when /usr/bin/chromium is missing, except under CI (env CI set), where
that is a failure. Screenshots are kept in the artifacts folder.
"""
import re

import pytest
from playwright.sync_api import Error as PlaywrightError

from db import Store, labeling
from tests.helpers.browser import open_browser
from tests.helpers.common import add_sketches, artifact, copy_db
from tests.helpers.labeler import (SMALL_CONTROLS_JS, TRAIN_OPTIONS, every_page, labeled,
                                   png_bytes, seeded, seeded_store, served, tile_ids,
                                   trained_template)

pytestmark = pytest.mark.browser

TIMEOUT_MS = 30_000
FAKE_CAMERA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


@pytest.fixture
def browser(playwright):
    browser = open_browser(playwright, *FAKE_CAMERA)
    yield browser
    browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
    yield page
    context.close()


def make_app(path):
    from labeler.app import create_app
    from tests.helpers.labeler import TRAIN_OPTIONS
    return create_app(path, train_options=TRAIN_OPTIONS)


@pytest.fixture
def seeded_db(tmp_path):
    with seeded_store(tmp_path / "browser.db") as seeded_db:
        yield seeded_db


def wait_until(page, expression, timeout_ms=TIMEOUT_MS):
    """Poll a JavaScript expression from Python (the page's CSP forbids the
    eval that page.wait_for_function uses, as it should)."""
    for _ in range(timeout_ms // 100):
        if page.evaluate(expression):
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"still false after {timeout_ms} ms: {expression}")


def tile_order(page):
    return [int(i) for i in page.locator(".grid .tile").evaluate_all(
        "tiles => tiles.map(t => t.dataset.id)")]


def test_shift_click_selects_a_range_and_the_batch_label_applies_to_it(seeded_db, page):
    path, store, train, test = seeded_db
    with served(make_app(path)) as url:
        page.goto(f"{url}/images?per_page=20")
        boxes = page.locator(".grid .tile input[type=checkbox]")
        boxes.nth(1).click()
        boxes.nth(5).click(modifiers=["Shift"])
        # Shift-click on the pictures works too.
        images = page.locator(".grid .tile img")
        images.nth(8).click()
        images.nth(10).click(modifiers=["Shift"])
        checked = [i for i in range(boxes.count()) if boxes.nth(i).is_checked()]
        assert checked == [1, 2, 3, 4, 5, 8, 9, 10]
        assert page.locator("#selected-count").inner_text() == "(8 selected)"
        ids = [tile_order(page)[i] for i in checked]
        page.fill("#batch-new-label", "blob")
        page.screenshot(path=artifact("labeler-range-selected.png"), full_page=True)
        page.click("#do-label")
        page.wait_for_selector("text=Labeled 8 image(s) as blob.")
        page.screenshot(path=artifact("labeler-range-labeled.png"), full_page=True)
        assert labeled(store, ids) == {i: "blob" for i in ids}
        texts = page.locator(".grid .tile .label-text").all_inner_texts()
        assert [t for t in texts if t == "blob"] == ["blob"] * 8
    assert page.errors == []


def test_key_help_shows_only_where_keys_work_and_times_are_local(seeded_db, browser):
    path, store, train, _ = seeded_db
    store.add_correction(train[0], "square", "sketch", "bob")
    with served(make_app(path)) as url:
        shown = {}
        for scripts in (True, False):
            context = browser.new_context(java_script_enabled=scripts,
                                          timezone_id="Asia/Tokyo", locale="en-US")
            page = context.new_page()
            page.goto(f"{url}/images")
            shown[scripts] = page.locator("#key-help").is_visible()
            page.goto(f"{url}/review")
            time = page.locator("time").first
            shown[f"time {scripts}"] = (time.inner_text(), time.get_attribute("datetime"))
            context.close()
    assert shown == {True: True, False: False, **{k: v for k, v in shown.items()
                                                   if k not in (True, False)}}
    utc_text, stamp = shown["time False"]
    local_text, _ = shown["time True"]
    assert utc_text.endswith("UTC") and not local_text.endswith("UTC")
    from datetime import datetime, timedelta, timezone
    tokyo = datetime.fromisoformat(stamp).astimezone(timezone(timedelta(hours=9)))
    assert f"{tokyo.day}, {tokyo.year}" in local_text  # e.g. "Nov 30, 2026, 9:48 AM"


def test_number_keys_label_the_focused_image_and_move_to_the_next(seeded_db, page):
    path, store, train, test = seeded_db
    store.remove_labels(train + test)
    classes = [c["name"] for c in labeling.class_summary(store)]
    with served(make_app(path)) as url:
        page.goto(f"{url}/images?per_page=20")
        first, second = tile_order(page)[:2]
        page.focus(f'.tile[data-id="{first}"]')
        page.keyboard.press("2")
        wait_until(page, f"document.querySelector('.tile[data-id=\"{first}\"] .label-text')"
                         f".textContent === {classes[1]!r}")
        assert page.evaluate("document.activeElement.dataset.id") == str(second)
        page.keyboard.press("4")
        wait_until(page, f"document.querySelector('.tile[data-id=\"{second}\"] .label-text')"
                         f".textContent === {classes[3]!r}")
        page.screenshot(path=artifact("labeler-number-keys.png"), full_page=True)
        assert labeled(store, [first, second]) == {first: classes[1], second: classes[3]}
        # Typing in a text field is not labeling.
        page.focus("#batch-new-label")
        page.keyboard.press("1")
        assert page.input_value("#batch-new-label") == "1"
    assert page.errors == []


def test_webcam_burst_stores_the_recorded_frames_in_the_chosen_class(seeded_db, page):
    path, store, _, _ = seeded_db
    with served(make_app(path)) as url:
        page.goto(f"{url}/capture")
        page.fill("#webcam-new-label", "cam")
        page.select_option("#webcam-fps", "5")
        page.click("#webcam-start")
        page.wait_for_selector("#webcam-record:not([disabled])")
        wait_until(page, "document.getElementById('webcam-video').videoWidth > 0")
        page.hover("#webcam-record")
        page.mouse.down()
        wait_until(page, "parseInt(document.getElementById('webcam-count').textContent) >= 6")
        rate = page.inner_text("#webcam-rate")
        page.screenshot(path=artifact("labeler-webcam-recording.png"), full_page=True)
        page.mouse.up()
        status = page.wait_for_selector("#webcam-status >> text=/Stored \\d+ new frame/")
        text = status.inner_text()
        page.screenshot(path=artifact("labeler-webcam-stored.png"), full_page=True)
        frames = int(page.inner_text("#webcam-count").split()[0])
        stored = int(re.search(r"Stored (\d+) new frame", text).group(1))
        assert frames >= 6 and 0 < float(rate.split()[0]) <= 10
        assert "as cam" in text
        rows = store.db.execute(
            "SELECT COUNT(*) FROM images i JOIN labels l ON l.image_id = i.id JOIN classes c"
            " ON c.id = l.class_id WHERE i.source = 'webcam' AND c.name = 'cam'").fetchone()[0]
        assert rows == stored and stored >= frames // 2
    assert page.errors == []


def test_retrain_button_shows_live_progress_then_the_new_version(backbone, tmp_path, page):
    path = tmp_path / "retrain.db"
    store = Store(path)
    seeded(store)
    # Unlabeled images make the scoring stage long enough to watch: 400 need
    # several feature batches, each reported (training alone takes ~1 s).
    add_sketches(store, 100, seed=11, shapes=None)
    store.remove_labels([r[0] for r in store.db.execute(
        "SELECT id FROM images ORDER BY id DESC LIMIT 400")])
    seeded_ids = {i for i, _ in store.labeled_images("train")}
    assert len(seeded_ids) >= 16
    with served(make_app(path)) as url:
        page.goto(f"{url}/retrain")
        page.click("#retrain-button")
        page.wait_for_selector("#job-progress")
        messages = set()
        for _ in range(200):
            if page.locator("#job-result, #job-error").count():
                break
            # all_inner_texts does not wait: the message may be gone already,
            # or the page reloading itself because the job ended.
            try:
                messages.update(page.locator("#job-message").all_inner_texts())
            except PlaywrightError as error:
                if "context was destroyed" not in str(error):
                    raise
            if len(messages) == 2:
                page.screenshot(path=artifact("labeler-retrain-progress.png"), full_page=True)
            page.wait_for_timeout(150)
        result = page.wait_for_selector("#job-result", timeout=300_000).inner_text()
        page.screenshot(path=artifact("labeler-retrain-done.png"), full_page=True)
        assert "It is live now." in result
        assert len(messages) >= 2, messages
        page.click("#job-result a")
        page.wait_for_selector("#confusion")
        page.screenshot(path=artifact("labeler-version.png"), full_page=True)
        assert page.evaluate("document.getElementById('confusion').naturalWidth") > 200
    assert page.errors == []
    store.close()


def test_the_grid_of_a_trained_database_sorted_by_uncertainty(backbone, tmp_path, page):
    path = copy_db(trained_template(), tmp_path / "trained.db")
    with served(make_app(path)) as url:
        page.goto(f"{url}/images?sort=least-confident")
        page.wait_for_selector(".grid .tile .pred")
        page.screenshot(path=artifact("labeler-least-confident.png"), full_page=True)
        first = page.locator(".grid .tile .pred").first.inner_text()
        assert first.startswith("model: ")
    assert page.errors == []


def test_a_class_named_like_html_is_text_in_every_page_of_a_real_browser(backbone, tmp_path,
                                                                         page):
    from tests.helpers.labeler import XSS
    path = copy_db(trained_template(), tmp_path / "xss.db")
    store = Store(path)
    star = next(c["id"] for c in labeling.class_summary(store) if c["name"] == "star")
    labeling.rename_class(store, star, XSS)
    some = store.labeled_images("train")[0][0]
    store.add_correction(some, XSS, "sketch", XSS, predicted_label=XSS)
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    app = make_app(path)
    with served(app) as url:
        page.goto(f"{url}/retrain")
        page.check("input[name=force]")
        page.click("#retrain-button")
        page.wait_for_selector("#job-result", timeout=300_000)
        version = store.live_version_id()
        assert XSS in store.model_version(version)["classes"]
        cell = (f"/versions/{version}/cell?truth=%3Cimg+src%3Dx+onerror%3Dalert%281%29%3E"
                f"&predicted=%3Cimg+src%3Dx+onerror%3Dalert%281%29%3E")
        for target in ("/images", f"/images/{some}", "/classes", "/review",
                       f"/versions/{version}", cell, "/capture"):
            page.goto(url + target)
            assert page.get_by_text(XSS).count() >= 1, target
            # No element was made from the name: the only images are ours.
            assert page.locator("img[src=x]").count() == 0, target
        page.goto(f"{url}/versions/{version}")
        page.screenshot(path=artifact("labeler-xss-version.png"), full_page=True)
    assert dialogs == []
    assert page.errors == []
    store.close()


def test_a_webcam_burst_stops_at_max_burst_frames_while_the_button_is_held(seeded_db, page,
                                                                           monkeypatch):
    from labeler.settings import settings
    path, store, _, _ = seeded_db
    monkeypatch.setattr(settings, "max_burst_frames", 3)
    with served(make_app(path)) as url:
        page.goto(f"{url}/capture")
        page.select_option("#webcam-fps", "10")
        page.click("#webcam-start")
        page.wait_for_selector("#webcam-record:not([disabled])")
        wait_until(page, "document.getElementById('webcam-video').videoWidth > 0")
        page.hover("#webcam-record")
        page.mouse.down()
        page.wait_for_selector("#webcam-status >> text=/Stored \\d+ new frame/")
        page.wait_for_timeout(600)
        page.mouse.up()
        assert page.inner_text("#webcam-count") == "3 frames"
        assert store.db.execute(
            "SELECT COUNT(*) FROM images WHERE source = 'webcam'").fetchone()[0] == 3
    assert page.errors == []


def test_files_dropped_on_the_upload_area_are_uploaded(seeded_db, page):
    import base64
    from tests.helpers.labeler import png_bytes
    path, store, _, _ = seeded_db
    before = store.count_images()
    files = [base64.b64encode(png_bytes("star", 700 + i)).decode() for i in range(2)]
    with served(make_app(path)) as url:
        page.goto(f"{url}/capture")
        transfer = page.evaluate_handle("""(files) => {
            const transfer = new DataTransfer();
            files.forEach((data, i) => {
                const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
                transfer.items.add(new File([bytes], `drop-${i}.png`, {type: "image/png"}));
            });
            return transfer;
        }""", files)
        page.dispatch_event("#drop-zone", "drop", {"dataTransfer": transfer})
        page.wait_for_selector("text=2 file(s) ready")
        page.fill("#upload-new-label", "dropped")
        page.click("#upload-submit")
        page.wait_for_selector("text=Stored 2 new image(s) as dropped.")
        page.screenshot(path=artifact("labeler-drop-upload.png"), full_page=True)
    assert store.count_images() == before + 2
    assert page.errors == []


def test_a_page_says_when_another_process_makes_a_new_version_live(seeded_db, page):
    import numpy as np
    from model.head import head_to_bytes, init_params
    path, store, _, _ = seeded_db
    with served(make_app(path)) as url:
        page.goto(f"{url}/images")
        assert page.locator("#live-model").inner_text().strip() == "live model: none yet"
        # The demo (another process, another connection) makes a version live.
        other = Store(path)
        version = other.add_model_version(
            "stand-in", ["circle", "star"], {"alpha": 0.25, "input_size": 224},
            {"accuracy": None}, head_to_bytes(init_params([4, 2], np.random.default_rng(0))),
            live=True)
        other.close()
        note = page.locator("#live-changed")
        note.wait_for()
        assert f"v{version} is live now" in note.inner_text()
        note.click()
        page.locator(f"#live-model a[href='/versions/{version}']").wait_for()
    assert page.errors == []


def retrain_and_export(page, url, store, shot, press=lambda button: button.click()):
    """Retrain from its page until the result shows (`shot`: its screenshot),
    then fetch the exports the export page links. `press` clicks or taps."""
    import httpx
    before = store.live_version_id()
    page.goto(f"{url}/retrain")
    press(page.locator("#retrain-button"))
    page.wait_for_selector("#job-result", timeout=300_000)
    assert store.live_version_id() not in (None, before)
    page.screenshot(path=artifact(shot), full_page=True)
    page.goto(f"{url}/export")
    links = page.locator("a[id^=export-]")
    hrefs = {links.nth(i).get_attribute("id"): links.nth(i).get_attribute("href")
             for i in range(links.count())}
    assert set(hrefs) >= {"export-dataset", "export-keras", "export-labels"}
    for name in ("export-dataset", "export-labels"):
        assert httpx.get(url + hrefs[name], timeout=120).status_code == 200


def test_the_core_flows_work_with_javascript_off(backbone, tmp_path, browser):
    """Label, batch label, review, upload, retrain and export as plain HTML
    forms: what a browser without scripts (or with them blocked) gets."""
    from labeler.app import create_app
    with seeded_store(tmp_path / "noscript.db") as (path, store, train, _):
        store.add_correction(train[0], "blob", "sketch", "anonymous@10.0.0.1")
        upload = tmp_path / "new-star.png"
        upload.write_bytes(png_bytes("star", seed=77))
        with served(create_app(path, train_options=TRAIN_OPTIONS)) as url:
            context = browser.new_context(java_script_enabled=False,
                                          viewport={"width": 1280, "height": 1000})
            context.set_default_timeout(TIMEOUT_MS)
            page = context.new_page()
            page.goto(f"{url}/images?per_page=20")
            assert page.evaluate("document.documentElement.classList.contains('js')") is False
            order = tile_ids(page.content())
            boxes = page.locator(".grid .tile input[type=checkbox]")
            boxes.nth(2).check()
            boxes.nth(4).check()
            page.fill("#batch-new-label", "zigzag")
            page.click("#do-label")
            page.wait_for_selector("text=Labeled 2 image(s) as zigzag.")
            assert labeled(store, [order[2], order[4]]) == {order[2]: "zigzag",
                                                            order[4]: "zigzag"}
            # One image, from its own page.
            page.goto(f"{url}/images/{order[6]}")
            page.fill("input[name=new_label]", "wave")
            page.click("button[name=action][value=label]")
            page.locator("#image-label").filter(has_text="wave").wait_for()
            assert labeled(store, [order[6]]) == {order[6]: "wave"}
            page.goto(f"{url}/review")
            page.locator(".accept-one").first.click()
            page.wait_for_selector("text=Accepted 1 correction(s).")
            assert store.corrections()[0]["status"] == "accepted"
            page.goto(f"{url}/capture")
            page.set_input_files("#upload-files", str(upload))
            page.fill("#upload-form input[name=new_label]", "star")
            page.click("#upload-submit")
            page.wait_for_selector("text=Stored 1 new image(s)")
            # The running job's page refreshes itself (a <noscript> refresh).
            retrain_and_export(page, url, store, "labeler-noscript-retrained.png")
            context.close()


# How far the page is wider than the window (a phone must not scroll sideways).
OVERFLOW_JS = "Math.max(document.documentElement.scrollWidth, window.innerWidth) - screen.width"


def test_the_core_flows_work_on_a_phone(backbone, tmp_path, browser):
    """Label, batch label, review, upload, retrain and export by touch on a
    390x844 screen, every page without sideways scrolling and every control
    finger-sized."""
    from labeler.app import create_app
    with seeded_store(tmp_path / "phone.db") as (path, store, train, _):
        store.add_correction(train[0], "blob", "sketch", "anonymous@10.0.0.1")
        upload = tmp_path / "new-star.png"
        upload.write_bytes(png_bytes("star", seed=78))
        with served(create_app(path, train_options=TRAIN_OPTIONS)) as url:
            context = browser.new_context(viewport={"width": 390, "height": 844},
                                          is_mobile=True, has_touch=True,
                                          device_scale_factor=2)
            context.set_default_timeout(TIMEOUT_MS)
            page = context.new_page()
            wide, small = {}, {}
            for where in every_page(train[1]):
                page.goto(url + where)
                wide[where] = page.evaluate(OVERFLOW_JS)
                small[where] = page.evaluate(f"() => {{ {SMALL_CONTROLS_JS} }}")
            assert not {where: px for where, px in wide.items() if px > 0}, wide
            assert not {where: c for where, c in small.items() if c}, small
            page.goto(f"{url}/images?per_page=20")
            order = tile_ids(page.content())
            boxes = page.locator(".grid .tile input[type=checkbox]")
            boxes.nth(2).tap()
            boxes.nth(4).tap()
            page.fill("#batch-new-label", "zigzag")
            page.locator("#do-label").tap()
            page.wait_for_selector("text=Labeled 2 image(s) as zigzag.")
            assert labeled(store, [order[2], order[4]]) == {order[2]: "zigzag",
                                                            order[4]: "zigzag"}
            page.screenshot(path=artifact("labeler-phone-grid.png"), full_page=True)
            # One image, from its own page.
            page.goto(f"{url}/images/{order[6]}")
            page.fill("input[name=new_label]", "wave")
            page.locator("button[name=action][value=label]").tap()
            page.locator("#image-label").filter(has_text="wave").wait_for()
            assert labeled(store, [order[6]]) == {order[6]: "wave"}
            page.goto(f"{url}/review")
            accept = page.locator(".accept-one").first
            box = accept.bounding_box()
            assert min(box["width"], box["height"]) >= 44, box
            accept.tap()
            page.wait_for_selector("text=Accepted 1 correction(s).")
            assert store.corrections()[0]["status"] == "accepted"
            page.goto(f"{url}/capture")
            page.set_input_files("#upload-files", str(upload))
            page.fill("#upload-form input[name=new_label]", "star")
            page.locator("#upload-submit").tap()
            page.wait_for_selector("text=Stored 1 new image(s)")
            page.screenshot(path=artifact("labeler-phone-capture.png"), full_page=True)
            retrain_and_export(page, url, store, "labeler-phone-retrained.png",
                               press=lambda button: button.tap())
            context.close()
