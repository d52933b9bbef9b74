"""The demo's HTTP boundary (demo_guard) against the launched demo: garbage on
every route, requests built to exhaust memory, forged senders, upload
floods, frame headers and Gradio's error answers."""
import base64
import io
import json
import re
import secrets
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.helpers.demo import draw_shape
from tests.helpers.fuzz import odd_requests, peak_memory_growth, routes_of, send_all

# Peak memory a hostile request may add to the serving process. Without the
# guard a few KB of request cost 150 MB to 3 GB.
MEMORY_BOUND_MB = 150


def png_bytes(image):
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def huge_png():
    """7000x7000 pixels in about 60 KB: a line on white."""
    image = Image.new("L", (7000, 7000), 255)
    ImageDraw.Draw(image).line((0, 0, 6999, 6999), fill=0, width=9)
    return png_bytes(image)


def upload(base, data, name="x.png", cookies=None):
    answer = httpx.post(f"{base}/gradio_api/upload", files={"files": (name, data)},
                        cookies=cookies, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()[0]


def file_data(path):
    return {"path": path, "meta": {"_type": "gradio.FileData"}}


def call(base, api_name, data, headers=None, cookies=None):
    """A queued call over plain HTTP: (its final event name, its data)."""
    started = httpx.post(f"{base}/gradio_api/call/{api_name}", json={"data": data},
                         headers=headers, cookies=cookies, timeout=30)
    assert started.status_code == 200, started.text
    event_id = started.json()["event_id"]
    text = httpx.get(f"{base}/gradio_api/call/{api_name}/{event_id}", timeout=120,
                     cookies=cookies).text
    event, payload = None, None
    for line in text.splitlines():
        if line.startswith("event: "):
            event = line[len("event: "):]
        elif line.startswith("data: "):
            payload = json.loads(line[len("data: "):])
    return event, payload


@pytest.fixture(scope="module")
def base(server):
    return server[0].rstrip("/")


def test_garbage_on_every_route_gets_no_5xx_and_bounded_memory(server, base):
    import demo
    routes = routes_of(demo.demo.server_app)
    assert len(routes) > 40  # Gradio's routes, not a handful
    with peak_memory_growth() as growth:
        answers = send_all(base, odd_requests(routes, seed=14))
    server_errors = [a for a in answers if isinstance(a[0], int) and a[0] >= 500]
    assert len(answers) > 300 and not server_errors, server_errors[:10]
    # Event streams may keep a request open until the timeout; nothing else hangs.
    stalled = [a for a in answers if not isinstance(a[0], int)]
    assert all(("/queue/data" in p or "upload_progress" in p or "heartbeat" in p)
               for _, _, p in stalled), stalled[:10]
    assert growth["mb"] < MEMORY_BOUND_MB, growth
    # Still serving.
    event, _ = call(base, "classify_photo", [file_data(upload(base, png_bytes(
        draw_shape("circle", seed=1))))])
    assert event == "complete"


def pad_stroke(base, drawing):
    """The Draw pad's change event queued as the page queues it, with
    `drawing` as the pad's value: its final message."""
    import demo
    pad = next(block._id for block in demo.demo.blocks.values()
               if getattr(block, "elem_id", None) == "sketchpad")
    fn_index = next(index for index, fn in demo.demo.fns.items()
                    if (pad, "change") in [tuple(target) for target in fn.targets])
    session = secrets.token_hex(6)
    joined = httpx.post(f"{base}/gradio_api/queue/join", timeout=30, json={
        "data": [drawing, None], "fn_index": fn_index, "session_hash": session,
        "trigger_id": pad, "event_data": None})
    assert joined.status_code == 200, joined.text
    with httpx.stream("GET", f"{base}/gradio_api/queue/data", timeout=120,
                      params={"session_hash": session}) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    return message
    raise AssertionError("the event stream closed without an answer")


def data_url(data):
    return "data:image/png;base64," + base64.b64encode(data).decode()


def test_a_drawing_that_is_not_a_small_png_is_refused_without_decoding_it(base):
    with peak_memory_growth() as growth:
        huge = pad_stroke(base, data_url(huge_png()))
    not_png = pad_stroke(base, "data:image/jpeg;base64," + base64.b64encode(b"x").decode())
    not_base64 = pad_stroke(base, "data:image/png;base64,%%%")
    garbage = pad_stroke(base, data_url(b"\x89PNG\r\n\x1a\nnot really"))
    for message, says in ((huge, "7000x7000"), (not_png, "PNG data URL"),
                          (not_base64, "not base64"), (garbage, "could not be read")):
        assert not message["success"] and says in json.dumps(message), message
    assert growth["mb"] < MEMORY_BOUND_MB, growth
    # A drawing as the pad sends it is answered.
    drawn = pad_stroke(base, data_url(png_bytes(draw_shape("circle", seed=3))))
    assert drawn["success"] and drawn["output"]["data"][0]["label"], drawn


def test_a_component_function_that_does_not_exist_is_404(base):
    for call_ in ({"component_id": 10 ** 9, "fn_name": "accept_blobs"},
                  {"component_id": 0, "fn_name": "no_such_function"}):
        wrong = httpx.post(f"{base}/gradio_api/component_server/", timeout=30,
                           json={**call_, "session_hash": "s", "data": {}})
        assert wrong.status_code == 404, wrong.text


def test_unknown_functions_and_calls_are_404_and_bodies_are_bounded(base):
    from demo_handlers import settings
    for fn_index in (999, -1, 2 ** 70, "0", True):
        answer = httpx.post(f"{base}/gradio_api/queue/join", timeout=30,
                            json={"data": [], "fn_index": fn_index, "session_hash": "x"})
        assert answer.status_code == 404, (fn_index, answer.text)
    assert httpx.get(f"{base}/gradio_api/call/correct/no-such-id", timeout=30).status_code == 404
    assert httpx.get(f"{base}/gradio_api/queue/data?session_hash=nobody",
                     timeout=30).status_code == 404

    def chunks():  # no Content-Length: the limit holds on what is read
        for _ in range(settings.request_bytes // 65536 + 10):
            yield b" " * 65536
    with peak_memory_growth() as growth:
        answer = httpx.post(f"{base}/gradio_api/queue/join", content=chunks(), timeout=60,
                            headers={"content-type": "application/json"})
    assert answer.status_code == 413
    assert growth["mb"] < MEMORY_BOUND_MB, growth


def test_direct_api_errors_are_4xx_with_the_products_message_not_gradios(base):
    refused = httpx.post(f"{base}/gradio_api/run/classify_photo", timeout=30, json={
        "data": [file_data("/etc/passwd")]})
    assert refused.status_code == 400
    assert refused.json()["error"].startswith("A file in the request was not uploaded")
    assert "/etc/passwd" not in refused.text
    garbage = upload(base, b"not an image at all", name="x.png")
    unreadable = httpx.post(f"{base}/gradio_api/run/classify_photo", timeout=30, json={
        "data": [file_data(garbage)]})
    assert unreadable.status_code == 400
    assert "PIL" not in unreadable.text and "/tmp" not in unreadable.text


def test_an_api_call_leaves_no_session_behind_once_its_answer_is_read(base):
    import demo
    sessions = demo.demo.state_holder.session_data
    sketch = file_data(upload(base, png_bytes(draw_shape("star", seed=3))))
    before = set(sessions)
    for _ in range(3):
        event, payload = call(base, "classify_sketch", [sketch])
        assert event == "complete" and payload[0]["label"] == "star", payload
    # The server finishes the answer's request just after the client has read it.
    deadline = time.monotonic() + 30
    while not set(sessions) <= before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert set(sessions) <= before


def test_an_api_call_describes_only_the_blocks_its_event_uses(base, monkeypatch):
    """Gradio describes every block of the page (its configuration and API
    schema) for each new session, and every plain-HTTP call is a session:
    10-19 ms of CPU a webcam frame for the demo's ~110 blocks."""
    import demo
    from gradio.blocks import BlocksConfig
    described = []
    describe = BlocksConfig.config_for_block

    def counted(key, *args, **kwargs):
        described.append(key)
        return describe(key, *args, **kwargs)
    monkeypatch.setattr(BlocksConfig, "config_for_block", staticmethod(counted))
    sketch = file_data(upload(base, png_bytes(draw_shape("circle", seed=5))))
    event, payload = call(base, "classify_sketch", [sketch])
    assert event == "complete" and payload[0]["label"] == "circle", payload
    fn = next(fn for fn in demo.demo.fns.values() if fn.api_name == "classify_sketch")
    used = {block._id for block in fn.inputs + fn.outputs}
    assert len(demo.demo.blocks) > 100
    assert described and set(described) <= used, (len(described), used)


def test_a_session_describes_the_page_as_gradios_own_would(server):
    import demo
    from gradio.state_holder import SessionState
    import demo_guard
    ours, gradios = demo_guard.Session(demo.demo), SessionState(demo.demo)
    key = next(iter(ours.blocks_config.blocks))
    for session in (ours, gradios):
        session._update_value_in_config(key, "changed")
    assert list(ours.components) == list(gradios.components)
    assert len(list(ours.components)) > 100


def test_every_answer_forbids_framing(base):
    for answer in (httpx.get(base + "/", timeout=30),
                   httpx.get(f"{base}/gradio_api/info", timeout=30),
                   httpx.post(f"{base}/gradio_api/queue/join", json={"fn_index": 999},
                              timeout=30)):
        assert answer.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]


def test_forged_forwarded_for_is_one_sender_and_browsers_are_told_apart_by_cookie(base):
    from service.access import BrowserIds
    path = upload(base, png_bytes(draw_shape("circle", seed=700)))

    def sender(**kwargs):
        event, payload = call(base, "correct", [file_data(path), "ring", "sketch"], **kwargs)
        assert event == "complete", payload
        return payload[0]["sender"]
    forged = [sender(headers={"X-Forwarded-For": f"203.0.113.{n}"}) for n in range(3)]
    browsers = [sender(cookies={BrowserIds.COOKIE: httpx.get(base + "/", timeout=30)
                                .cookies[BrowserIds.COOKIE]}) for _ in range(2)]
    made_up = sender(cookies={BrowserIds.COOKIE: "made-up.0123456789abcdef0123456789abcdef"})
    assert forged == ["anonymous@127.0.0.1"] * 3
    assert len(set(browsers)) == 2 and all(s.startswith("anonymous:") for s in browsers)
    assert made_up == "anonymous@127.0.0.1"


def test_forwarded_for_names_the_client_only_behind_a_trusted_proxy():
    from demo_guard import Guard
    guard = Guard(None, blocks=None, proxies={"10.0.0.1"})
    forwarded = {"x-forwarded-for": "198.51.100.7, 203.0.113.9"}
    assert guard._with_client({"client": ("10.0.0.1", 1)}, forwarded)["client"][0] == \
        "203.0.113.9"
    assert guard._with_client({"client": ("127.0.0.1", 1)}, forwarded)["client"][0] == \
        "127.0.0.1"


def test_uploads_are_limited_per_browser_and_by_the_folders_quota(base, monkeypatch):
    from demo_handlers import settings
    from service.access import BrowserIds
    cookie = {BrowserIds.COOKIE: httpx.get(base + "/", timeout=30).cookies[BrowserIds.COOKIE]}
    monkeypatch.setattr(settings, "uploads_per_minute", 3)
    statuses = [httpx.post(f"{base}/gradio_api/upload", files={"files": ("a.png", b"x")},
                           cookies=cookie, timeout=30).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    monkeypatch.setattr(settings, "uploads_per_minute", 1000)
    monkeypatch.setattr(settings, "upload_quota", 1)
    full = httpx.post(f"{base}/gradio_api/upload", files={"files": ("a.png", b"x")},
                      timeout=30)
    assert full.status_code == 507 and "full" in full.text
    monkeypatch.setattr(settings, "upload_quota", 10 ** 12)
    monkeypatch.setattr(settings, "upload_bytes", 100_000)

    def chunks():
        yield b"--zz\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.png\"\r\n\r\n"
        for _ in range(100):
            yield b"\0" * 65536
        yield b"\r\n--zz--\r\n"
    with peak_memory_growth() as growth:
        big = httpx.post(f"{base}/gradio_api/upload", content=chunks(), timeout=60,
                         headers={"content-type": "multipart/form-data; boundary=zz"})
    assert big.status_code == 413
    assert growth["mb"] < MEMORY_BOUND_MB, growth


def test_what_the_model_saw_comes_inside_a_strokes_answer_not_as_a_file(base):
    """A file would cost the page one more request a stroke."""
    import demo_guard
    drawn = pad_stroke(base, data_url(png_bytes(draw_shape("circle", seed=3))))
    seen = drawn["output"]["data"][3]
    assert "/file=" not in seen
    picture = Image.open(io.BytesIO(base64.b64decode(
        re.search(r'<img src="data:image/png;base64,([^"]+)"', seen).group(1))))
    pixels = np.asarray(picture.convert("L"))
    assert picture.size == (224, 224) and pixels[0, 0] == 255 and (pixels < 128).any()
    assert demo_guard.Seen("What the model saw", "seen", 200).postprocess(None) == ""


def test_a_gallery_of_picture_files_answers_as_gradios_without_starting_threads(
        tmp_path, monkeypatch):
    import gradio as gr
    from gradio.components import gallery
    import demo_guard
    files = []
    for n in range(3):
        files.append(str(tmp_path / f"like-{n}.png"))
        Image.new("L", (96, 96), 100 + n).save(files[-1])
    value = [(path, "star") for path in files]
    expected = gr.Gallery(format="png").postprocess(value).model_dump()

    def no_threads(*args, **kwargs):
        raise AssertionError("a thread pool was made")
    monkeypatch.setattr(gallery, "ThreadPoolExecutor", no_threads)
    assert demo_guard.Gallery(format="png").postprocess(value).model_dump() == expected
    # Anything else is Gradio's to convert.
    with pytest.raises(AssertionError, match="thread pool"):
        demo_guard.Gallery(format="png").postprocess([(Image.open(files[0]), "star")])
