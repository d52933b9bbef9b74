"""The launched demo called through gradio_client over HTTP on 127.0.0.1."""

from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from PIL import Image

from tests.helpers.common import TEST_ALPHA, copy_db
from tests.helpers.demo import (DemoProcess, client_sketch, draw_shape,
                                predict_when_ready, starter_template, top_label)


@pytest.fixture(scope="module")
def client(server):
    return Client(server[0], verbose=False)


def test_api_has_exactly_the_three_named_endpoints(client):
    names = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert names == {"/classify_sketch", "/classify_photo", "/correct"}


def test_http_classify_sketch_returns_a_top3_label_for_a_drawn_star(client, tmp_path):
    path = tmp_path / "star.png"
    draw_shape("star", seed=404).save(path)
    value = client.predict(client_sketch(path), api_name="/classify_sketch")
    assert top_label(value) == "star"
    assert [c["label"] for c in value["confidences"]][0] == "star"
    assert len(value["confidences"]) == 3


def test_http_blank_sketch_answers_draw_something(client, tmp_path):
    path = tmp_path / "blank.png"
    Image.new("RGB", (400, 400), "white").save(path)
    value = client.predict(client_sketch(path), api_name="/classify_sketch")
    assert value["label"] == "draw something" and not value.get("confidences")


def test_http_classify_photo_accepts_one_uploaded_image(client, tmp_path):
    path = tmp_path / "frame.jpg"
    draw_shape("square", seed=405, size=480).save(path, quality=85)
    value = client.predict(handle_file(str(path)), api_name="/classify_photo")
    assert top_label(value) == "square"


def test_http_classify_then_correct_leaves_a_pending_row_in_sqlite(client, server, tmp_path):
    from db import Store
    _, app = server
    path = tmp_path / "circle.png"
    draw_shape("circle", seed=406).save(path)
    assert top_label(client.predict(client_sketch(path), api_name="/classify_sketch")) == "circle"
    saved = client.predict(handle_file(str(path)), "ring", "sketch", api_name="/correct")
    assert saved["status"] == "pending" and saved["label"] == "ring"
    # A fresh connection to the file: the row is committed.
    store = Store(app.model.db_path)
    [row] = [c for c in store.corrections() if c["id"] == saved["correction"]]
    assert (row["label"], row["status"], row["source"], row["predicted_label"]) == \
        ("ring", "pending", "sketch", "circle")
    live = store.live_version_id()
    prediction = store.prediction(row["prediction_id"])
    store.close()
    assert (prediction["model_version"], prediction["label"]) == (live, "circle")


def test_http_correct_source_is_optional_and_defaults_to_upload(client, tmp_path):
    path = tmp_path / "tri.png"
    draw_shape("triangle", seed=407).save(path)
    saved = client.predict(handle_file(str(path)), "pyramid", api_name="/correct")
    assert saved["status"] == "pending"
    from db import Store
    import demo_handlers as handlers
    store = Store(handlers.app.model.db_path)
    assert [c["source"] for c in store.corrections() if c["id"] == saved["correction"]] == \
        ["upload"]
    store.close()


def test_http_invalid_label_comes_back_as_a_readable_error(client, tmp_path):
    from gradio_client.exceptions import AppError
    path = tmp_path / "tri.png"
    draw_shape("triangle", seed=408).save(path)
    with pytest.raises(AppError, match="cannot be empty"):
        client.predict(handle_file(str(path)), "  ", api_name="/correct")


def test_queue_has_a_concurrency_limit_and_a_bounded_size():
    import demo
    import demo_handlers as handlers
    assert demo.demo._queue.max_size == handlers.settings.queue_max_size
    # Places in the queue are sent every queue_status_every seconds, not to
    # every waiting request whenever one starts.
    assert not demo.demo._queue.live_updates
    assert demo.demo._queue.update_intervals == handlers.settings.queue_status_every
    limits = {fn.api_name: fn.concurrency_limit for fn in demo.demo.fns.values()
              if fn.api_name in ("classify_sketch", "classify_photo", "correct")}
    assert limits == {"classify_sketch": handlers.settings.classify_concurrency,
                      "classify_photo": handlers.settings.classify_concurrency, "correct": 4}


def test_answered_calls_are_not_summarised_for_a_monitoring_dashboard(client, server, tmp_path,
                                                                    monkeypatch):
    import httpx
    from gradio.queueing import Queue
    summaries = []
    monkeypatch.setattr(Queue, "_get_df",
                        staticmethod(lambda records: summaries.append(len(records))))
    path = tmp_path / "circle.png"
    draw_shape("circle", seed=409).save(path)
    for _ in range(3):
        assert top_label(client.predict(client_sketch(path), api_name="/classify_sketch"))
    assert summaries == []
    assert httpx.get(server[0] + "monitoring/summary").status_code == 403


def test_a_strokes_look_alikes_come_inside_its_answer_not_as_files_to_fetch(server):
    """Three files would cost the page three more requests when they change."""
    import base64
    import io
    import re
    from bench.browsers import Browser, Page
    from demo_handlers import settings
    url, app = server
    drawing = io.BytesIO()
    draw_shape("star", seed=410, size=480).save(drawing, format="PNG")
    browser = Browser(Page(url))
    try:
        like = browser.stroke(drawing.getvalue())[4]
    finally:
        browser.close()
    assert "/file=" not in like
    pictures = re.findall(r'<img src="data:image/png;base64,([^"]+)"', like)
    assert len(pictures) == 3
    for data in pictures:
        assert Image.open(io.BytesIO(base64.b64decode(data))).size == (settings.like_side,) * 2


def test_command_line_first_run_with_auth_trains_serves_and_accepts_owner_corrections(
        backbone, tmp_path):
    """`python demo.py` on a fresh file: seeds, trains, serves; the auth user is the owner."""
    from db import Store
    db = tmp_path / "fresh.db"
    # The password comes from the environment here (--auth owner:s3cret does the same).
    proc = DemoProcess("--db", str(db), "--alpha", str(TEST_ALPHA),
                       env={"SKETCHLAB_AUTH": "owner:s3cret"})
    try:
        proc.wait_for("SketchLab demo on", timeout=240)
        with pytest.raises(Exception):
            Client(proc.url, verbose=False)  # no password: no access
        client = Client(proc.url, auth=("owner", "s3cret"), verbose=False)
        path = tmp_path / "star.png"
        draw_shape("star", seed=409).save(path)
        # The first model trains in the background while the page is already served.
        value = predict_when_ready(client, client_sketch(path), api_name="/classify_sketch")
        assert top_label(value) == "star"
        saved = client.predict(handle_file(str(path)), "asterisk", "sketch", api_name="/correct")
        assert saved["status"] == "accepted" and saved["sender"] == "owner"
        store = Store(db)
        assert (saved["image"], "asterisk") in store.labeled_images("train")
        assert store.count_images() == 161  # the 160 starter sketches and the correction
        store.close()
    finally:
        proc.stop()


def test_share_without_internet_says_so_and_keeps_serving_locally(backbone, tmp_path):
    db = copy_db(starter_template(), tmp_path / "share.db")
    # An unreachable share server: no link can be made, online or not.
    proc = DemoProcess("--db", str(db), "--share",
                       env={"GRADIO_SHARE_SERVER_ADDRESS": "127.0.0.1:9"})
    try:
        out = proc.wait_for("SketchLab demo on", timeout=240)
        assert "no public share link could be made" in out
        assert "adding examples and retraining are disabled" in out
        client = Client(proc.url, verbose=False)
        path = tmp_path / "sq.png"
        draw_shape("square", seed=410).save(path)
        value = predict_when_ready(client, client_sketch(path), api_name="/classify_sketch")
        assert top_label(value) == "square"
    finally:
        proc.stop()


def test_a_page_of_another_site_cannot_reach_the_local_demo_under_its_own_name(server, tmp_path):
    # DNS rebinding: evil.example resolves to 127.0.0.1, so the browser sends
    # the attacker's host name and origin to the local demo, which lets
    # anyone on this computer teach and retrain.
    import httpx
    from urllib.parse import urlsplit
    url = server[0].rstrip("/")
    port = urlsplit(url).port
    path = tmp_path / "x.png"
    draw_shape("circle", seed=5).save(path)

    def upload(**headers):
        with open(path, "rb") as file:
            return httpx.post(f"{url}/gradio_api/upload", files={"files": file},
                              headers=headers)
    evil = f"evil.example:{port}"
    page = httpx.get(f"{url}/", headers={"Host": evil})
    assert page.status_code == 400 and "evil.example" in page.text
    assert upload(Host=evil, Origin=f"http://{evil}").status_code == 400
    # Its own host name with a foreign page's origin: refused too.
    assert upload(Origin="http://evil.example").status_code == 400
    assert upload(Origin="null").status_code == 400
    assert httpx.get(f"{url}/", headers={"Host": f"localhost:{port}"}).status_code == 200
    assert upload(Origin=url).status_code == 200
    assert upload().status_code == 200  # scripts send no Origin: gradio_client, curl


def test_only_a_demo_on_this_computer_alone_is_held_to_its_host_names():
    import demo

    def hosts(**options):
        return demo.launch_options(**options)["app_kwargs"]["middleware"][0].kwargs["hosts"]
    assert "localhost" in hosts(host="127.0.0.1", port=1)
    assert "sketch.lan" in hosts(host="127.0.0.1", port=1, allowed_hosts=["Sketch.LAN"])
    assert hosts(host="127.0.0.1", port=1, share=True) is None
    assert hosts(host="0.0.0.0", port=1) is None


def test_many_browsers_sending_at_once_are_held_by_the_limit_on_all(
        server, tmp_path, monkeypatch):
    # Each browser is its own sender (its signed cookie), and a client can
    # fetch as many cookies as it likes: the limit on all senders together
    # bounds what they send.
    from datetime import timedelta
    from db import Store
    from db import store as store_module
    from service.access import BrowserIds
    _, app = server
    # An hour from now: the module's earlier corrections are out of the minute.
    later = store_module.utcnow() + timedelta(hours=1)
    monkeypatch.setattr(store_module, "utcnow", lambda: later)
    monkeypatch.setattr(store_module, "ALL_CORRECTIONS_PER_MINUTE", 3)
    store = Store(app.model.db_path)
    before = len(store.corrections())
    outcomes = []
    for browser in range(5):
        path = tmp_path / f"c{browser}.png"
        draw_shape("circle", seed=600 + browser).save(path)
        forged = Client(server[0], verbose=False, headers={
            "Cookie": f"{BrowserIds.COOKIE}={app.browsers.issue()}"})
        try:
            outcomes.append(forged.predict(handle_file(str(path)), "ring", "sketch",
                                           api_name="/correct")["sender"])
        except Exception as error:  # gradio_client raises the app's message
            outcomes.append(str(error))
    rows = store.corrections()[before:]
    store.close()
    assert len(rows) == 3 and len({r["sender"] for r in rows}) == 3
    assert all("all the corrections it takes" in o for o in outcomes[3:]), outcomes


def test_uploaded_temporary_files_are_swept_once_old(tmp_path):
    # Anyone may POST files to /gradio_api/upload: they must not stay for ever.
    import time
    from pathlib import Path
    import demo
    import gradio as gr
    import httpx
    from bench.common import free_port
    sweep = demo.settings.temp_sweep_every, demo.settings.temp_file_age
    assert demo.demo.delete_cache == sweep and max(sweep) <= 3600
    # The same mechanism at a second's scale, on a page of its own.
    with gr.Blocks(delete_cache=(1, 1)) as page:
        gr.Image(type="filepath")
    page.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True,
                quiet=True)
    try:
        path = tmp_path / "x.png"
        draw_shape("circle", seed=9).save(path)
        with open(path, "rb") as file:
            [stored] = httpx.post(f"{page.local_url}gradio_api/upload",
                                  files={"files": file}).json()
        assert Path(stored).exists()
        deadline = time.monotonic() + 60  # only there so that a failure does not hang
        while Path(stored).exists():
            assert time.monotonic() < deadline, "the upload was never swept"
            time.sleep(0.5)
    finally:
        page.close()


def test_wrong_owner_passwords_are_limited_to_a_few_a_minute(monkeypatch):
    # The demo's /login once took 100 wrong passwords at 694 a second. The
    # module's demo is being served: the sign-in runs on a page of its own.
    import gradio as gr
    import httpx
    import demo_handlers
    from bench.common import free_port
    monkeypatch.setattr(demo_handlers.settings, "login_tries", 3)
    with gr.Blocks() as page:
        gr.Markdown("signed in")
    page.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True,
                quiet=True, auth=demo_handlers.owner_login("owner", "s3cret"))
    try:
        def login(user, password):
            return httpx.post(f"{page.local_url}login",
                              data={"username": user, "password": password})
        assert login("owner", "s3cret").status_code == 200
        assert [login("owner", "guess").status_code for _ in range(3)] == [400] * 3
        # Used up: not even the right password is checked this minute.
        assert login("owner", "s3cret").status_code == 400
        # Another name's tries are its own (and it is still not the owner).
        assert login("mallory", "s3cret").status_code == 400
    finally:
        page.close()
