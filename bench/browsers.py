"""Simulated browsers of the demo's page, for the load benches: each has its
own cookies (the guard's browser id) and its own Gradio session, and speaks
the page's protocol as the browser does:

  * a stroke: the pad's change event queued with the drawing as a PNG data
    URL (POST /gradio_api/queue/join) and its answer read from the session's
    event stream (GET /gradio_api/queue/data); then the pictures the answer
    shows (file data, and <img> in HTML) are fetched, each once (GET
    /gradio_api/file=...), as the page does with a browser cache;
  * a correction: the "Save correction" button's event on the same session
    (the server keeps what the last answer was about);
  * a webcam frame: /classify_photo over the API (upload, call, event
    stream), as an API user sends one.

The events are found by the components' elem_ids in the page's /config, so
bench.ceiling's trivial app, which uses the same elem_ids, is driven the
same way.
"""
import base64
import html
import json
import re
import secrets
import time

import httpx

PAD = "sketchpad"
CORRECTION_SEND = "sketch-correct-send"
BLANK = "draw something"
# Pictures a page fetches; those inside the answer (data: URLs) it has already.
IMG_SRC = re.compile(r'<img [^>]*src="(?!data:)([^"]+)"')


class Refused(Exception):
    """An answer that is not the page's: an HTTP error or a failed event."""


class BrowserTransport(httpx.HTTPTransport):
    """HTTP as a browser sends it: a request that went out on a kept-alive
    connection the server closed before answering (the server's idle
    timeout, 5 s for uvicorn, meeting the request) is sent again once, as
    Chromium and Firefox do; httpx alone reports it as an error."""

    def handle_request(self, request):
        try:
            return super().handle_request(request)
        except httpx.RemoteProtocolError:
            return super().handle_request(request)


class Page:
    """What a browser learns from /config: the ids it sends with events."""

    def __init__(self, url):
        self.url = url
        config = httpx.get(url + "config", timeout=30).json()
        ids = {c["props"].get("elem_id"): c["id"] for c in config["components"]}
        self.pad = ids[PAD]
        self.events = {}
        # How many inputs each event takes: the page sends null for a State's.
        self.inputs = {}
        for dependency in config["dependencies"]:
            self.inputs[dependency["id"]] = len(dependency["inputs"])
            for target, trigger in dependency["targets"]:
                self.events.setdefault((target, trigger), dependency["id"])
        self.stroke = self.events[(self.pad, "change")]
        send = ids.get(CORRECTION_SEND)
        self.correction = self.events.get((send, "click")) if send is not None else None


class Browser:
    """One browser tab: its cookies and its Gradio session."""

    def __init__(self, page):
        self.page = page
        self.http = httpx.Client(timeout=60, transport=BrowserTransport())
        self.session = secrets.token_hex(6)
        self.cached = set()
        # The page itself: the guard's browser cookie comes with it.
        self.http.get(page.url).raise_for_status()

    def close(self):
        self.http.close()

    def stroke(self, png, times=None):
        """Send the drawing as the pad does after a stroke; returns the event's
        output. `times`, a dict, gets the seconds of each request."""
        drawing = "data:image/png;base64," + base64.b64encode(png).decode()
        output = self._event(self.page.stroke, [drawing], self.page.pad, times)
        # Every drawing sent has ink: a blank answer means the server lost it.
        if (output[0] or {}).get("label") == BLANK:
            raise Refused("a drawing with ink was answered as blank: the drawing was lost")
        return output

    def correct(self, label):
        """The correction button, naming a new class; returns the event's output."""
        return self._event(self.page.correction, [None, None, label], None)

    def _event(self, fn_index, data, trigger, times=None):
        times = {} if times is None else times
        data = list(data) + [None] * (self.page.inputs[fn_index] - len(data))
        started = time.perf_counter()
        joined = self.http.post(self.page.url + "gradio_api/queue/join", json={
            "data": data, "fn_index": fn_index, "session_hash": self.session,
            "trigger_id": trigger, "event_data": None})
        _check(joined)
        times["join"] = time.perf_counter() - started
        output = None
        with self.http.stream("GET", self.page.url + "gradio_api/queue/data",
                              params={"session_hash": self.session}) as stream:
            _check(stream)
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    if not message.get("success"):
                        raise Refused(str(message.get("output"))[:300])
                    output = message["output"]["data"]
                elif message.get("msg") in ("unexpected_error", "close_stream"):
                    if message.get("msg") == "unexpected_error":
                        raise Refused(message.get("message", "")[:300])
                    break
        if output is None:
            raise Refused("the event stream closed without an answer")
        times["stream"] = time.perf_counter() - started - times["join"]
        self._show(output)
        return output

    def _show(self, value):
        """GET the files an answer refers to, as file data or as <img> in
        HTML, that this browser has not fetched yet."""
        if isinstance(value, dict):
            url = value.get("url")
            if isinstance(url, str) and "/file=" in url:
                self._fetch(url)
            for item in value.values():
                self._show(item)
        elif isinstance(value, list):
            for item in value:
                self._show(item)
        elif isinstance(value, str):
            for url in IMG_SRC.findall(value):
                self._fetch(html.unescape(url))

    def _fetch(self, url):
        url = httpx.URL(self.page.url).join(url)
        if url not in self.cached:
            self.cached.add(url)
            _check(self.http.get(url))

    def classify_photo(self, name, data):
        """/classify_photo over the API: upload, call, read the answer."""
        url = self.page.url + "gradio_api/"
        uploaded = self.http.post(url + "upload", files={"files": (name, data, "image/jpeg")})
        _check(uploaded)
        started = self.http.post(url + "call/classify_photo", json={"data": [{
            "path": uploaded.json()[0], "meta": {"_type": "gradio.FileData"}}]})
        _check(started)
        answer = self.http.get(url + f"call/classify_photo/{started.json()['event_id']}").text
        if "event: complete" not in answer:
            raise Refused(answer[-300:])
        return answer


def _check(response):
    if response.status_code >= 400:
        response.read()
        raise Refused(f"{response.status_code} {response.request.url.path}: "
                      f"{response.text[:200]}")


def wait_until(deadline):
    """Sleep until the monotonic `deadline` (at once when it passed)."""
    time.sleep(max(0.0, deadline - time.monotonic()))
