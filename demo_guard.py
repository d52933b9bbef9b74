"""The demo's guard at its HTTP boundary. Gradio answers anyone who can reach
the page; what it would take from them unbounded is bounded and checked here
before Gradio sees it, and what Gradio answers is made the product's.

  * `Guard`, ASGI middleware in front of Gradio: host names and origins,
    client addresses behind trusted proxies, a signed cookie per browser,
    bounded request bodies (with or without Content-Length), requests for
    functions and components that do not exist, upload rates and the upload
    folder's quota, frame headers, and Gradio's error answers made 4xx with
    the product's message.
  * `Blocks` and `Image`: Gradio's, with their input bounded (pixels are
    checked from the header before decoding) and their input errors made the
    product's; `Pad`, the drawing pad on a plain 2D canvas, bounded alike;
    `Gallery`, Gradio's without its thread pool for pictures that are files;
    `Session`, Gradio's session state, whose blocks' configurations are made
    when first needed rather than for every plain-HTTP call.

The limits are demo settings (demo_handlers.settings), each with help text.
"""
import base64
import binascii
import json
import logging
import os
import sys
import time
from html import escape
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import gradio as gr
from gradio.components.gallery import GalleryData, GalleryImage
from gradio.data_classes import ImageData
from gradio.state_holder import SessionState, StateHolder
from starlette.requests import Request

from db.errors import SketchError
from demo_handlers import PNG_DATA_URL, app, picture_data_url, settings
from model.errors import BadImage
from model.images import decode, header_size, to_rgb
from service.access import Rate, check_host
from service.ingest import TooLarge

log = logging.getLogger("sketchlab.demo")

PREFIX = "/gradio_api"
# POST routes whose body is files, passed on as it comes (bounded); every
# other POST route's body is read whole (bounded) and must be JSON, or a
# form for the component server.
FILE_ROUTES = ("/upload", "/process_recording")
SECURITY_HEADERS = [(b"x-frame-options", b"DENY"),
                    (b"content-security-policy", b"frame-ancestors 'none'"),
                    (b"x-content-type-options", b"nosniff")]
FOLDER_CHECK_S = 2.0


class BadRequest(SketchError):
    status = 400


class NotFound(SketchError):
    status = 404


class UploadSpaceFull(SketchError):
    """The upload folder holds `upload_quota` bytes: nothing more until the sweep."""
    status = 507


class Guard:
    """ASGI middleware in front of the Gradio app `blocks`.

    `hosts`: the host names a request may name (service.access.allowed_hosts;
    None allows any); a request that changes something (not GET or HEAD) from
    a page must come from a page of an allowed host. `proxies`: addresses
    whose X-Forwarded-For is believed; from any other address it is ignored,
    so that a client cannot pose as many senders."""

    def __init__(self, app_, blocks, hosts=None, proxies=()):
        self.app, self.blocks, self.hosts = app_, blocks, hosts
        self.proxies = frozenset(proxies)
        self.uploads = Rate(lambda: settings.uploads_per_minute, "uploads")
        self.all_uploads = Rate(lambda: settings.all_uploads_per_minute, "uploads from everyone")
        self._folder = [-FOLDER_CHECK_S, 0]  # [when measured, bytes]

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        started = []
        try:
            self._check_host(scope, headers)
            scope = self._with_client(scope, headers)
            browser = app.browsers.verify(_cookie(headers, app.browsers.COOKIE))
            if scope["type"] == "http":
                receive = await self._checked(scope, headers, receive, browser)
                send = self._answering(scope, send, started, issue=browser is None)
            await self.app(scope, receive, send)
        except SketchError as error:
            if started:
                raise
            await _refuse(scope, send, error)
        finally:
            self._forget_call_session(scope)

    def _forget_call_session(self, scope):
        """Once a `/call/<api>/<event>` answer was read (or refused), drop the
        session Gradio made for that one call (its id is the event's): it
        holds the whole page's configuration, ~160 KB, and Gradio would keep
        10,000 of them. A page's or gradio_client's session is not one of these."""
        path = scope.get("path", "")
        if scope["type"] != "http" or scope.get("method") != "GET" or \
                not path.startswith(PREFIX + "/call/") or path.count("/") != 4:
            return
        holder = getattr(self.blocks, "state_holder", None)
        if holder is None:
            return
        event_id = path.rsplit("/", 1)[1]
        with holder.lock:
            holder.session_data.pop(event_id, None)
            holder.time_last_used.pop(event_id, None)

    def _check_host(self, scope, headers):
        if self.hosts is None:
            return
        check_host(headers.get("host"), self.hosts)
        origin = headers.get("origin")
        if origin is not None and scope.get("method", "GET") not in ("GET", "HEAD"):
            check_host(urlsplit(origin).netloc, self.hosts)

    def _with_client(self, scope, headers):
        """The scope with the client's address: the last address of
        X-Forwarded-For that is not a trusted proxy, when the connection
        comes from one; the connection's address otherwise."""
        client = scope.get("client")
        forwarded = headers.get("x-forwarded-for")
        if not client or client[0] not in self.proxies or not forwarded:
            return scope
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        for hop in reversed(hops):
            if hop not in self.proxies:
                return {**scope, "client": (hop[:100], 0)}
        return scope

    async def _checked(self, scope, headers, receive, browser):
        """`receive` for Gradio once the request passed the checks (the body
        it reads again when the checks had to read it)."""
        path, method = scope["path"], scope["method"]
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if not path.startswith(PREFIX):
            pages = [page[0] for page in self.blocks.pages]
            if path.strip("/") in pages and query.get("page", [""])[0] not in pages:
                raise NotFound("No such page.")
            return _bounded(receive, settings.request_bytes) if method == "POST" else receive
        route = path[len(PREFIX):]
        if route.startswith("/proxy="):
            raise NotFound("This app proxies nothing.")
        if method == "POST" and route.startswith(FILE_ROUTES):
            if route.rstrip("/") == "/upload":
                self._admit_upload(scope, headers, browser)
            return _bounded(receive, settings.upload_bytes)
        if method == "GET" and route.startswith("/call/") and route.count("/") == 3:
            self._check_event(route.rsplit("/", 1)[1])
            return receive
        if method == "GET" and route == "/queue/data":
            sessions = self.blocks._queue.pending_messages_per_session
            if query.get("session_hash", [""])[0] not in sessions:
                raise NotFound("No such session: join the queue first.")
            return receive
        if method != "POST":
            return receive
        body = await _read(receive, settings.request_bytes)
        if not body:
            return _replay(body)
        if route.startswith("/component_server"):
            await self._check_component_call(scope, headers, body)
        else:
            _check_fn_index(self.blocks, _json_object(body))
        return _replay(body)

    def _admit_upload(self, scope, headers, browser):
        address = (scope.get("client") or ("?",))[0]
        sender = f"browser:{browser}" if browser else f"address:{address}"
        self.uploads.take(sender)
        self.all_uploads.take("everyone")
        if self._upload_folder_bytes() >= settings.upload_quota:
            raise UploadSpaceFull(f"The demo's upload space ({settings.upload_quota:,} bytes) "
                                  "is full; uploads are kept a few minutes, try again then.")
        # Counted now, so that uploads between two walks of the folder add up.
        self._folder[1] += _integer(headers.get("content-length")) or 0

    def _upload_folder_bytes(self):
        """The upload folder's size, walked at most every FOLDER_CHECK_S (an
        upload must not cost a walk of thousands of files)."""
        measured_at, size = self._folder
        if time.monotonic() - measured_at >= FOLDER_CHECK_S:
            folder = Path(os.environ.get("GRADIO_TEMP_DIR") or gr.utils.get_upload_folder())
            self._folder = [time.monotonic(), _folder_bytes(folder)]
        return self._folder[1]

    def _check_event(self, event_id):
        queue = self.blocks._queue
        if event_id in queue.event_ids_to_events or any(
                event_id in ids for ids in queue.pending_event_ids_session.values()):
            return
        raise NotFound("No such call: its results were already read, or it never existed.")

    async def _check_component_call(self, scope, headers, body):
        if headers.get("content-type", "").startswith("multipart/form-data"):
            fields = await _form(scope, body)
        else:
            fields = _json_object(body)
            fields = {**(fields.get("data") if isinstance(fields.get("data"), dict) else {}),
                      **fields}
        block = self.blocks.blocks.get(_integer(fields.get("component_id")))
        names = [fn.__name__ for fn in getattr(block, "server_fns", ())]
        if fields.get("fn_name") not in names:
            raise NotFound("No such component function.")

    def _answering(self, scope, send, started, issue):
        """`send` with the frame headers, a browser cookie when the request
        had none, and Gradio's 500 for a refused input made a 400."""
        direct = scope["path"].startswith((PREFIX + "/run/", PREFIX + "/api/"))
        held = {}

        async def answer(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [
                    *message.get("headers", []), *SECURITY_HEADERS,
                    *([(b"set-cookie", app.browsers.cookie(app.browsers.issue()).encode())]
                      if issue else [])]}
                if direct and message["status"] == 500:
                    held["start"] = message
                    return
                started.append(True)
            elif message["type"] == "http.response.body" and "start" in held:
                held["body"] = held.get("body", b"") + message.get("body", b"")
                if message.get("more_body"):
                    return
                start, body = _translated(held.pop("start"), held.pop("body"))
                started.append(True)
                await send(start)
                message = {"type": "http.response.body", "body": body}
            await send(message)
        return answer


def _translated(start, body):
    """Gradio answers 500 to every error of a direct API call. A gr.Error is
    the product refusing the input (it carries a title): a 400 with its
    message. Anything else is a fault of the server, whose text is not shown."""
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and payload.get("title"):
        status, payload = 400, {"error": payload.get("error"), "title": payload["title"]}
    else:
        log.error("unexpected error in a direct API call: %s", body[:2000])
        status, payload = 500, {"error": "The server failed to answer this request."}
    body = json.dumps(payload).encode()
    headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
    return ({**start, "status": status,
             "headers": headers + [(b"content-length", str(len(body)).encode())]}, body)


def _cookie(headers, name):
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def _integer(value):
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _json_object(body):
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise BadRequest("The request body is not JSON.") from None
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.")
    return data


def _check_fn_index(blocks, data):
    if data.get("fn_index") is None:
        return
    index = data["fn_index"]
    if isinstance(index, bool) or not isinstance(index, int) or index not in blocks.fns:
        raise NotFound(f"No function {str(index)[:30]!r} in this app.")


def _canvas_limit():
    width, height = settings.canvas
    return 4 * width * height


def _check_pixels(data, limit=None):
    """BadRequest unless the image in `data` (bytes or a path) has at most
    `limit` pixels (default `image_pixels`), read from its header only."""
    limit = limit or settings.image_pixels
    size = header_size(data)
    if size is None:
        raise BadRequest("The image could not be read, or is far too large.")
    width, height = size
    if width * height > limit:
        raise BadRequest(f"The image has {width}x{height} pixels; at most {limit:,} in all "
                         f"are accepted here.")


def _folder_bytes(folder):
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


async def _read(receive, limit):
    """The whole body, or TooLarge as soon as it passes `limit` bytes."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BadRequest("The client went away.")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"The request is larger than {limit:,} bytes; send images as "
                           "uploads.")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body):
    sent = []

    async def receive():
        if not sent:
            sent.append(True)
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}
    return receive


def _bounded(receive, limit):
    """`receive` that raises TooLarge once the body passes `limit` bytes, with
    or without a Content-Length, before the rest is read."""
    size = [0]

    async def bounded():
        message = await receive()
        size[0] += len(message.get("body", b""))
        if size[0] > limit:
            raise TooLarge(f"The upload is larger than {limit:,} bytes.")
        return message
    return bounded


async def _form(scope, body):
    request = Request(scope, _replay(body))
    try:
        form = await request.form(max_files=1, max_fields=16)
    except Exception:
        raise BadRequest("The form could not be read.") from None
    fields = {}
    for key, value in form.multi_items():
        fields[key] = await value.read() if hasattr(value, "read") else value
    await form.close()
    return fields


async def _refuse(scope, send, error):
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = str(error).encode()
    await send({"type": "http.response.start", "status": error.status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()), *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})


# -- components ---------------------------------------------------------------------

class Blocks(gr.Blocks):
    """gr.Blocks whose malformed inputs are the product's 4xx: Gradio reads a
    request's input (file references, data models, component preprocessing)
    before any handler runs, and would answer its errors with a 500 and raw
    text (temporary paths, Pillow's messages)."""

    def queue(self, *args, **kwargs):
        """Gradio's queue without its traffic summary: after every event it
        rebuilds a pandas table of the last 10,000 events for its monitoring
        dashboard, which the demo does not serve (launched with
        enable_monitoring=False): 5 ms of CPU an event at first, 23 ms once
        10,000 are kept, on the one thread that answers everyone."""
        blocks = super().queue(*args, **kwargs)
        self._queue.ANAYLTICS_CACHE_FREQUENCY = sys.maxsize  # (Gradio's spelling)
        self._queue.ANALYTICS_MAX_EVENTS = 1
        return blocks

    @property
    def state_holder(self):
        return self._state_holder

    @state_holder.setter
    def state_holder(self, holder):
        # Gradio's app makes a StateHolder and hands it over here; the same
        # object stays the app's, so its class is changed in place.
        holder.__class__ = SessionHolder
        self._state_holder = holder

    async def preprocess_data(self, block_fn, inputs, state, explicit_call=False):
        try:
            return await super().preprocess_data(block_fn, inputs, state, explicit_call)
        except gr.Error:
            raise
        except Exception as error:
            log.info("input refused: %s", error)
            if "was not uploaded by a user" in str(error):
                message = "A file in the request was not uploaded to this app: upload it first."
            else:
                message = "The request's input is not in the form this app expects."
            raise gr.Error(message, title="Bad request") from None


class SessionHolder(StateHolder):
    """Gradio's holder of sessions, whose new sessions are `Session`s."""

    def __getitem__(self, session_id):
        if session_id not in self.session_data:
            self.session_data[session_id] = Session(self.blocks)
        return super().__getitem__(session_id)


class Session(SessionState):
    """Gradio's session state, whose blocks' configurations (each with its API
    schema) are made when one is first needed. Gradio makes all of them when a
    session starts: for the demo's ~110 blocks, 10-19 ms of CPU paid by every
    plain-HTTP `/call/...` (a session each, the webcams' frames among them),
    where an event needs those of its own inputs and outputs; a deep link
    reads them all and gets them all."""

    def __init__(self, blocks):
        super().__init__(SimpleNamespace(default_config=blocks.default_config, blocks={}))
        self._rendered = blocks.blocks

    @property
    def components(self):
        made = self.config_values
        self.config_values = {
            key: made[key] if key in made else self.blocks_config.config_for_block(key, [], block)
            for key, block in self.blocks_config.blocks.items() if key in self._rendered}
        return super().components


class Pad(gr.HTML):
    """The demo's drawing pad: black ink on a white canvas of
    `settings.canvas` pixels, with undo and clear (demo_pad.js). Its value is
    the drawing as a PNG data URL; its `change` event comes at the end of each
    stroke, at undo and at clear, and its `clear` event at clear. The handlers
    get an RGB image, or None for an empty pad; the server empties a pad by
    setting its value to None. A drawing must be a PNG of at most four times
    the canvas's pixels, read from its header before it is decoded (the
    request it came in is bounded by `request_bytes`)."""

    def __init__(self, label, elem_id, size, brush, side):
        width, height = size
        # No floating label: it would cover the margin where strokes may begin.
        super().__init__(
            value=None, label=label, show_label=False, container=True, elem_id=elem_id,
            html_template=PAD_HTML, css_template=PAD_CSS, js_on_load=PAD_JS,
            width=width, height=height, brush=brush, side=side, pad_label=label)

    def preprocess(self, payload):
        if not payload:
            return None
        if not isinstance(payload, str) or not payload.startswith(PNG_DATA_URL):
            raise gr.Error("A drawing is sent as a PNG data URL.", title="Bad request")
        try:
            data = base64.b64decode(payload[len(PNG_DATA_URL):], validate=True)
        except binascii.Error:
            raise gr.Error("The drawing's data URL is not base64.", title="Bad request") from None
        try:
            _check_pixels(data, limit=_canvas_limit())
            return to_rgb(decode(data))
        except (BadRequest, BadImage) as error:
            raise gr.Error(str(error), title="Bad request") from None

    def postprocess(self, value):
        if value is not None:
            raise ValueError("The server can only empty a pad (value None).")
        return None

    def taking(self):
        """The `js` of an event that takes this pad's drawing (it runs in the
        page before the event is sent): when the server then empties the pad,
        the strokes drawn since the event stay on it."""
        canvas = json.dumps(f"#{self.elem_id} canvas")
        return (f"(...inputs) => {{ document.querySelector({canvas})"
                "?.dispatchEvent(new Event('taken')); return inputs; }")

    def api_info(self):
        return {"type": "string", "description": f"a drawing as a {PNG_DATA_URL}... URL"}

    def example_payload(self):
        return None

    example_value = example_payload


PAD_JS = (Path(__file__).with_name("demo_pad.js")).read_text()
# The margin around the canvas is where a stroke may begin; the buttons are
# finger-sized; on a phone the canvas fills the width.
PAD_HTML = """<div class="pad-area"><canvas width="${width}" height="${height}" role="img"
aria-label="${pad_label}"></canvas></div>
<div class="pad-tools"><button type="button" class="undo" aria-label="Undo">↶ Undo</button>
<button type="button" class="clear" aria-label="Clear canvas">✕ Clear</button></div>"""
PAD_CSS = """
.pad-area { padding: 14px; margin: 0 auto; max-width: calc(${side}px + 28px);
            touch-action: none; user-select: none; -webkit-user-select: none;
            -webkit-touch-callout: none; cursor: crosshair; }
.pad-area canvas { display: block; width: 100%; aspect-ratio: ${width} / ${height};
                   background: #fff; border: 1px solid var(--border-color-primary);
                   border-radius: var(--radius-sm); touch-action: none; }
.pad-tools { display: flex; gap: 8px; justify-content: center; }
.pad-tools button { min-width: 44px; min-height: 44px; padding: 0 14px;
                    border: 1px solid var(--border-color-primary);
                    border-radius: var(--radius-sm); background: var(--button-secondary-background-fill);
                    color: var(--button-secondary-text-color); }
@media (max-width: 640px) { .pad-area { padding: 8px 0; } }
"""


class Seen(gr.HTML):
    """What the model saw, beside its answer: the handler's PIL image (or
    None), sent inside the event's message as a PNG data URL. As a gr.Image
    it would be a file in Gradio's cache that the page then fetches: one more
    request a stroke, about 4 ms of server CPU (docs/PERFORMANCE.md)."""

    def __init__(self, label, elem_id, height):
        super().__init__(value=None, label=label, show_label=True, container=True,
                         elem_id=elem_id, js_on_load=None, min_height=height,
                         css_template=SEEN_CSS, side=height)

    def postprocess(self, value):
        if value is None:
            return ""
        return f'<img src="{picture_data_url(value)}" alt="{escape(self.label)}">'


SEEN_CSS = """img { display: block; margin: 0 auto; height: ${side}px; max-width: 100%;
      object-fit: contain; }"""


class Image(gr.Image):
    """gr.Image whose input has at most `image_pixels` pixels, read from the
    header before Gradio decodes it."""

    def preprocess(self, payload):
        if payload is not None and payload.path:
            try:
                _check_pixels(payload.path)
            except BadRequest as error:
                raise gr.Error(str(error), title="Bad request") from None
        return super().preprocess(payload)


class Gallery(gr.Gallery):
    """gr.Gallery whose pictures given as (PNG file path, caption) pairs, as
    the demo's are, are passed on as they are. Gradio converts a gallery's
    pictures in a thread pool made for each answer: for three files, 4 ms of
    starting and joining threads (load 8) where this takes 0.05 ms."""

    def postprocess(self, value):
        if not value or not all(isinstance(item, tuple) and len(item) == 2 and
                                isinstance(item[0], str) and os.path.isabs(item[0])
                                and item[0].endswith(".png") for item in value):
            return super().postprocess(value)
        return GalleryData(root=[GalleryImage(image=ImageData(
            path=path, orig_name=Path(path).name, mime_type="image/png"), caption=caption)
            for path, caption in value])
