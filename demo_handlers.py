"""The demo's handlers: thin functions over the application layer (service/)
that turn Gradio values into calls and answers into what the page shows.
demo.py lays the page out and wires these to its events.

Named errors are translated here, once: a pop-up for buttons and API calls,
the verdict line for live events (strokes, webcam frames).
"""
import asyncio
import base64
import functools
import hmac
import logging
import os
import shutil
import tempfile
import threading
import weakref
from html import escape
from pathlib import Path

import cv2
import gradio as gr
import numpy as np

from db import labeling
from db.errors import NotFound, SketchError, StorageError
from model.errors import (BadImage, BlankSketch, NoLiveModel, NotEnoughData, WeightsMissing,
                          WouldBlock)
from model.images import MAX_IMAGE_BYTES, decode, picture, to_rgb
from model.sheet import Track
from service import ingest, lifecycle, teach
from service.access import Access, BrowserIds, NotAllowed, TooManyTries, Tries
from service.jobs import Busy
from service.lifecycle import LiveModel, Phase
from service.settings import Setting, Settings

log = logging.getLogger("sketchlab.demo")

settings = Settings(
    Setting("unsure_below", 0.6, "below this top-class probability the page says it is "
            "not sure instead of naming a class"),
    Setting("classify_concurrency", 4, "classifications run at once; a stroke takes ~40 ms "
            "of the server's CPU, part of it outside Python's lock (the network, image "
            "encoding), so 4 at once serve 15-20 % more strokes a second than 2 on 2 cores "
            "(bench.load)"),
    Setting("write_concurrency", 4, "corrections and taught examples stored at once"),
    Setting("queue_max_size", 64, "requests waiting in the queue; past it Gradio answers "
            "'busy' at once instead of letting a slow backlog pile up"),
    Setting("queue_status_every", 2.0, "seconds between two updates of each waiting "
            "request's place in the queue; Gradio's default, an update to every waiting "
            "request whenever one starts, costs a full queue ~60 messages a stroke "
            "(bench.load: 23-33 % fewer strokes a second at 40 browsers)"),
    Setting("stream_every", 0.3, "seconds between two webcam frames sent for classification"),
    Setting("stream_time_limit", 120, "seconds a webcam stream lasts"),
    Setting("webcam_streams", 4, "webcam streams classified at once"),
    Setting("max_file_size", "20mb", "largest file Gradio accepts in an upload"),
    Setting("temp_file_age", 900, "seconds an uploaded or generated temporary file is kept "
            "(anyone may upload); older ones are deleted, and all of them at a restart"),
    Setting("temp_sweep_every", 300, "seconds between two sweeps of old temporary files"),
    Setting("login_tries", 10, "wrong passwords a user name may try a minute; after that "
            "sign-in fails without the password being checked until the minute is over"),
    Setting("request_bytes", 4_000_000, "largest body of a call to Gradio's API routes (a "
            "webcam frame travels inside one as a JPEG); files come as uploads"),
    Setting("upload_bytes", 21_000_000, "largest body of one upload request (a file of "
            "max_file_size and its form)"),
    Setting("uploads_per_minute", 600, "uploads a minute from one browser (or, without its "
            "cookie, one address); a streaming webcam uploads a frame every `stream_every` "
            "seconds"),
    Setting("all_uploads_per_minute", 6000, "uploads a minute from everyone together"),
    Setting("upload_quota", 2_000_000_000, "bytes the upload folder may hold; past it "
            "uploads are refused (507) until old files are swept"),
    Setting("image_pixels", 12_000_000, "most pixels of an image the demo decodes (a 4000x3000 "
            "photo), read from its header first"),
    Setting("labeler_url", "http://127.0.0.1:7861/", "where the labeler runs (python -m "
            "labeler): the header links its review page when the demo is not exposed"),
    Setting("canvas", (480, 480), "the drawing pads' canvas in pixels; a drawing sent may "
            "have at most four times its pixels"),
    Setting("brush_radius", 5, "the pads' brush radius in canvas pixels"),
    Setting("pad_side", 480, "largest side of a pad's canvas on the page, in CSS pixels "
            "(on a phone it is the screen's width)"),
    Setting("like_side", 96, "side in pixels of each \"looks like these\" training example"),
    Setting("like_cache", 2000, "look-alike thumbnails kept in memory, ready to send (a few "
            "KB each); the least recently shown go first"),
    Setting("seen_height", 200, "height of the kept frame and of what the model sees, in "
            "pixels"),
    Setting("version_check_every", 5.0, "seconds between two checks of an open page for a "
            "version made live elsewhere (the labeler, another demo process)"),
    Setting("undo_depth", 50, "examples a page remembers for its Undo button"),
    Setting("teach_files", 100, "image files the Teach tab adds in one upload"),
    Setting("record_frames", 30, "webcam frames one press of Record adds at most (one every "
            "stream_every seconds)"),
    Setting("accept_at_once", 500, "pending corrections one press of \"Accept waiting "
            "corrections\" accepts"),
)

BLANK_LABEL = "draw something"
ERROR_TITLES = {WeightsMissing: "Backbone weights missing", NoLiveModel: "No model yet",
                NotEnoughData: "Not enough examples", BadImage: "Unreadable image",
                BlankSketch: "Blank image", NotAllowed: "Owner only", Busy: "Busy",
                StorageError: "Storage problem"}
PNG_DATA_URL = "data:image/png;base64,"
PNG_FAST = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]


def picture_data_url(image):
    """A PIL picture (grey or RGB) as a PNG data URL: a picture that travels
    inside an answer. Encoded for speed, as one is sent with every answer:
    zlib level 1 with run-length matching is both faster and smaller on
    drawings than Pillow's default (what the model saw: 0.65 against 1.35 ms,
    3.3 against 3.7 KB; docs/PERFORMANCE.md)."""
    pixels = np.asarray(image)
    if pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    done, data = cv2.imencode(".png", pixels, PNG_FAST)
    if not done:
        raise ValueError("OpenCV could not encode the picture as PNG.")
    return PNG_DATA_URL + base64.b64encode(data.tobytes()).decode()


class Pictures:
    """Pictures the page shows again and again. The class cards are PNG
    files, each written once and served from their folder as they are: no
    PNG encoding, hashing or copy of every card of every answer. The
    look-alike thumbnails come inside the answer as data URLs, each made once
    and kept in memory (the `like_cache` most recently shown). Stored images
    never change, so a picture is known by its image ids; one instance per
    database, whose image ids are its own; a card's file is one more for each
    example added, as the database grows."""

    def __init__(self):
        self._folder = None
        self._lock = threading.Lock()
        self._like_url = functools.lru_cache(maxsize=settings.like_cache)(self._thumbnail_url)

    def path(self, name, make):
        """The file `name`, made by `make()` (a PIL image) the first time."""
        with self._lock:
            if self._folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix="sketchlab-pictures-"))
                # Gone with these pictures (a new database) or at exit, not
                # left behind by every run.
                weakref.finalize(self, shutil.rmtree, self._folder, ignore_errors=True)
                # Served from here as they are: Gradio would otherwise hash,
                # check and copy each file into its cache at every answer.
                gr.set_static_paths([self._folder])
        path = self._folder / f"{name}.png"
        if not path.exists():
            part = path.with_suffix(f".{threading.get_ident()}.part")
            make().save(part, format="PNG")
            os.replace(part, path)
        return str(path)

    def like_html(self, like):
        """The look-alikes as HTML: for each (image id, label), its thumbnail
        as a PNG data URL, and its label. As files the page would fetch them,
        three requests of about 4 ms of server CPU each whenever they change
        (docs/PERFORMANCE.md); a gallery component would also cost Gradio ~3
        ms an answer to check and describe three files."""
        side = settings.like_side

        def figure(image_id, label):
            return (f'<figure><img src="{self._like_url(image_id, side)}" width="{side}" '
                    f'height="{side}" alt="{escape(label)}">'
                    f"<figcaption>{escape(label)}</figcaption></figure>")
        return '<div class="looks-like">' + "".join(figure(*one) for one in like) + "</div>"

    @staticmethod
    def _thumbnail_url(image_id, side):
        [(_, data)] = app.model.store.image_data([image_id])
        return picture_data_url(teach.thumbnail(data, side))

    def card(self, image_ids):
        """A class card's face (service.teach.card_picture) as a file."""
        return self.path("card-" + "-".join(map(str, image_ids)),
                         lambda: teach.card_picture(app.model.store, image_ids))


class App:
    """The demo's live model and who may do what; `configure` (re)sets both."""

    def __init__(self):
        self.browsers = BrowserIds()
        self.configure()

    def configure(self, db=None, alpha=None, owner=None, exposed=False, share=False):
        self.model = LiveModel(db, alpha)
        self.access = Access(owner, exposed)
        self.share = share
        self.share_url = None
        self.pictures = Pictures()


app = App()


# -- the boundary: named errors become a Gradio pop-up, or the verdict, here --------

def pop_up_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SketchError as error:
            raise gr.Error(str(error), title=ERROR_TITLES.get(type(error), "Error")) from None
    return wrapper


def errors_in_verdict(fn, outputs=3):
    """For live events: a pop-up several times a second would bury the page.
    The handler's second output is its verdict; the others are emptied."""
    @functools.wraps(fn)
    def wrapper(*args):
        try:
            return fn(*args)
        except SketchError as error:
            return (None, f"### ⚠️ {md(error)}") + (None,) * (outputs - 2)
    return wrapper


def user_of(request):
    return getattr(request, "username", None) if request is not None else None


# -- images ----------------------------------------------------------------------

def as_image(value):
    """A PIL image, a numpy array or a file path (Gradio's forms) -> RGB PIL image or None."""
    if value is None:
        return None
    if isinstance(value, (str, Path)):
        try:
            data = Path(value).read_bytes()
        except OSError as error:
            raise BadImage(f"The image file could not be read: {error.strerror}.") from None
        return to_rgb(decode(data))
    return to_rgb(value)


# -- text ------------------------------------------------------------------------------

def md(text):
    """Escape a user-chosen class name for Markdown."""
    return "".join("\\" + c if c in "\\`*_{}[]()#+-.!|<>~" else c for c in str(text))


def label_value(result):
    """A classify result -> a gr.Label value (top classes with confidences)."""
    return {label: float(p) for label, p in result["top"]}


def verdict(result):
    """The sentence above the confidences: a class, an honest 'not sure', or 'draw something'."""
    if result is None:
        return f"### ✏️ {BLANK_LABEL.capitalize()}"
    label, p = result["label"], result["confidence"]
    if result.get("unknown"):
        nearest = ", ".join(f"**{md(name)}**" for name, _ in result["top"])
        return (f"### 🤷 I don't know this one. It is nearest to {nearest}, but unlike "
                f"what I was taught. If it is a new class, type its name under **or a new "
                f"class** below and save it, or teach it a few drawings in the Teach tab.")
    if p < settings.unsure_below:
        return (f"### 🤔 Not sure. Maybe a **{md(label)}** ({p:.0%})? "
                f"Keep drawing, or correct it below.")
    return f"### It's a **{md(label)}** ({p:.0%})"


def model_info():
    """Markdown: the live version, its classes, its test accuracy, and how
    many corrections wait for review."""
    return _version_info() + review_note()


def _version_info():
    try:
        live = app.model.store.model_version()
    except SketchError as error:
        return f"⚠️ {md(error)}"
    if live is None:
        return "**Model:** none yet."
    metrics = live["metrics"]
    accuracy = metrics.get("accuracy")
    acc = "n/a" if accuracy is None else f"{accuracy:.1%}"
    counts = metrics.get("eval_counts", {})
    measured = ", ".join(f"{md(c)} {counts[c]}" for c in live["classes"] if counts.get(c))
    unmeasured = [c for c in live["classes"] if not counts.get(c)]
    missing = (f" · **not measured: {', '.join(md(c) for c in unmeasured)}** (no evaluation "
               f"images)" if unmeasured and counts else "")
    return (f"**Model version {live['id']}** · classes: "
            f"{', '.join(md(c) for c in live['classes'])} · test accuracy {acc} "
            f"on {metrics.get('eval_images', 0)} {metrics.get('eval_source', 'test')} images"
            f"{f' ({measured})' if measured else ''}{missing} · backbone {live['backbone']}")


def review_note():
    """How many corrections wait for review; on this computer alone (where
    the labeler's address works), a link to its review page."""
    try:
        pending = labeling.pending_count(app.model.store)
    except SketchError:
        return ""
    if not pending:
        return ""
    text = f"{pending} correction{'s' if pending != 1 else ''} waiting for review"
    if app.access.exposed:
        return f" · {text}"
    return f" · [{text} in the labeler]({settings.labeler_url.rstrip('/')}/review)"


def status():
    """Markdown banner: what is missing and how to provide it, or what is going on."""
    model = app.model
    problem, phase = model.problem, model.phase
    if isinstance(problem, WeightsMissing):
        text = (f"## ⚠️ No predictions: backbone weights missing\n\n{md(problem)}\n\n"
                "Corrections are still saved. Once the file is in place, reload this page "
                f"after {lifecycle.RETRY_FAILED_START_S} s: the demo picks it up without a "
                "restart.")
    elif problem is not None:
        text = f"## ⚠️ No predictions yet\n\n{md(problem)}"
    elif phase in (Phase.PREPARING, Phase.IDLE):
        text = (f"⏳ **Preparing the first model** ({md(model.progress or 'starting')}): "
                "a starter set of circles, squares, triangles and stars is being learned. "
                "This takes under a minute.")
    else:
        text = ""
    if app.share and app.share_url is None and phase is not Phase.IDLE:
        text += ("\n\nℹ️ No public share link could be made (offline?); "
                 "the demo is served locally only.")
    return text


def access_note(request):
    try:
        app.access.check_teach(user_of(request))
    except NotAllowed as error:
        return f"🔒 {error}"
    return ("Examples you add here are labeled at once. One in "
            f"{ingest.TEST_EVERY} is kept for testing.")


def correction_message(saved):
    if saved.get("already_saved"):
        return (f"✅ Already saved: it is a **{md(saved['label'])}** "
                f"(correction #{saved['correction']}, {saved['status']}).")
    if saved["status"] == "accepted":
        return (f"✅ Saved and accepted: it is a **{md(saved['label'])}** "
                f"(correction #{saved['correction']}). It is used at the next retrain.")
    return (f"✅ Saved: it is a **{md(saved['label'])}** (correction #{saved['correction']}, "
            f"pending review in the labeler). Thank you!")


def training_message(result):
    accuracy = result["test_accuracy"]
    text = (f"Trained version {result['version']} on {result['train_images']} images in "
            f"{result['seconds']:.0f} s; test accuracy "
            f"{'n/a' if accuracy is None else f'{accuracy:.1%}'}")
    if result["live"]:
        return text + ". **It is live now.**"
    return (text + f", not better than the live version "
            f"({result['live_accuracy_before']:.1%}), so version {result['live_version']} "
            f"stays live.")


# -- classification ------------------------------------------------------------------

def _classify_or_blank(image):
    """The model's answer, or None when there is nothing (no ink) to classify."""
    return _seen_or_blank(image)[0]


def _seen_or_blank(image, track=None, like=False, block=True):
    """(the model's answer, what it saw as a picture, and with `like` the
    training examples it looks like as (image id, label) pairs), or Nones
    when there is nothing (no ink) to classify. `track`: a live stream's
    sheet. The API goes without the examples: it does not show them. Not
    `block` (with `like`): WouldBlock rather than loading anything or
    searching a photo first."""
    if image is None:
        return None, None, None
    try:
        if like:
            result, seen, near = app.model.classify_shown(image, track=track, block=block)
            near = tuple((i, label) for i, label, _ in near)
        else:
            (result, seen), near = app.model.classify_seen(image, track=track), None
    except BlankSketch:
        return None, None, None
    return result, picture(seen), near


@pop_up_errors
def classify_sketch(path):
    """API /classify_sketch: a drawing's image file -> gr.Label value ("draw
    something" when it is blank or missing)."""
    result = _classify_or_blank(as_image(path))
    return label_value(result) if result else BLANK_LABEL


@pop_up_errors
def classify_photo(image):
    """API /classify_photo: one image (webcam frame or upload) -> gr.Label value."""
    image = as_image(image)
    if image is None:
        raise BadImage("No image was sent.")
    result = _classify_or_blank(image)
    return label_value(result) if result else BLANK_LABEL


def read_sketch(image, kept=None, block=True):
    """The Draw tab's drawing (an RGB image, None when the pad is empty) ->
    (label, verdict, what a correction refers to, what the model saw, the
    training examples it looks like). A correction is bound to the drawing
    the shown answer is about, whose picture is beside it, never to a later
    or earlier canvas. The examples are sent again only when they
    differ from those of the answer before (`kept`): on most strokes they
    do not. Not `block`: WouldBlock rather than loading anything or
    searching a photo first."""
    result, seen, like = _seen_or_blank(image, like=True, block=block)
    if result is None:
        return BLANK_LABEL, verdict(None), None, None, None
    same = kept is not None and kept.get("like") == like
    return (label_value(result), verdict(result), shown(image, "sketch", result, seen, like),
            seen, gr.skip() if same else app.pictures.like_html(like))


def cleared_sketch():
    """The Draw tab once its canvas is cleared: no answer, nothing to correct,
    no class chosen, no message left over from the drawing that is gone."""
    return BLANK_LABEL, verdict(None), None, None, None, None, "", ""


def read_photo(image, source="upload", track=None):
    """The webcam/upload tab -> (label, verdict, what a correction refers to,
    what the model saw): the cropped, cleaned input shows why an answer is
    wrong and how to hold the paper better. `track` (a `model.sheet.Track`,
    one per browser session) follows the sheet from frame to frame. The
    training examples it looks like are kept with it (a lookup, no pictures)
    for a snapshot or an upload to show."""
    image = as_image(image)
    if image is None:
        return None, "### 📷 Show a sketch to the camera or upload an image", None, None
    result, seen, like = _seen_or_blank(image, track, like=True)
    if result is None:
        return (BLANK_LABEL, "### 📷 No sketch in view: hold a drawing up to the camera",
                None, None)
    return (label_value(result), verdict(result), shown(image, source, result, seen, like),
            seen)


def shown(image, source, result, seen=None, like=None):
    """What the page keeps of a classification, for a later correction."""
    return {"image": image, "source": source, "prediction": result, "seen": seen,
            "like": like}


sketch_ui = pop_up_errors(read_sketch)
_sketch_live = errors_in_verdict(read_sketch, outputs=5)


async def sketch_live_ui(image, kept=None):
    """The pad's answer after each stroke, answered on the event loop once
    the model is loaded: a few milliseconds of work that in a worker thread
    would contend with the loop for Python's interpreter lock at every
    stroke (a fifth of a stroke's server CPU, docs/PERFORMANCE.md). Loading
    a version first, which can take seconds, goes to a worker thread, as
    every other handler runs, and so does a drawing read as a photo (ink
    along all its edges), whose sheet search takes tens of milliseconds."""
    try:
        return _sketch_live(image, kept, False)
    except WouldBlock:
        return await asyncio.to_thread(_sketch_live, image, kept)


webcam_ui = errors_in_verdict(lambda image, track=None: read_photo(image, "webcam", track),
                              outputs=4)


def uploaded_ui(path):
    """An uploaded file -> the kept view: (image, label, verdict, kept, seen,
    the training examples it looks like)."""
    label, text, kept, seen = pop_up_errors(read_photo)(path, "upload")
    return (kept["image"] if kept else None), label, text, kept, seen, _looks_like(kept)


def keep_frame(live):
    """The Snapshot button: keep the current webcam frame and its prediction."""
    if not live:
        return None, None, "### 📷 Start the webcam and hold up a sketch first", None, None, None
    return (live["image"], label_value(live["prediction"]), verdict(live["prediction"]), live,
            live["seen"], _looks_like(live))


def _looks_like(kept):
    """The gallery of a kept webcam frame or upload, from the examples found
    when it was classified (live frames show none: three pictures a frame
    would cost more than the frame)."""
    return app.pictures.like_html(kept["like"]) if kept and kept.get("like") else None


# -- corrections, teaching and retraining -------------------------------------------------

def save_correction(image, label, source, request, prediction=None, accept=None):
    """Store a correction: accepted at once for the owner (or when `accept`),
    pending review otherwise."""
    image = as_image(image)
    if image is None:
        raise BadImage("No image was sent with the correction.")
    user = user_of(request)
    accept = app.access.is_owner(user) if accept is None else accept
    return app.model.correct(image, label, source, user or _anonymous(request),
                             accept=accept, prediction=prediction)


@pop_up_errors
def correct(image, label, source="upload", request: gr.Request = None):
    """API /correct: store the image, the prediction it replaces and the right label."""
    return save_correction(image, label, source, request)


def _anonymous(request):
    """Anonymous senders are told apart by their browser's signed cookie, or
    without one by address (demo_guard believes X-Forwarded-For only from a
    trusted proxy), so that rate limits and "reject everything from this
    sender" apply to one client, not to all."""
    cookies = getattr(request, "cookies", None) or {}
    browser = app.browsers.verify(cookies.get(BrowserIds.COOKIE))
    if browser:
        return f"anonymous:{browser}"
    host = getattr(getattr(request, "client", None), "host", None)
    return f"anonymous@{host}" if host else "anonymous"


def _corrected_label(kept, choice, new_name):
    """The label a correction names (the typed new class wins over the list),
    or what is missing to make one."""
    if not kept:
        return None, "Nothing to correct yet: classify a sketch first."
    label = (new_name or "").strip() or choice
    if not label:
        return None, "Pick the right class from the list or type a new one."
    return label, None


def correct_ui(kept, choice, new_name, request: gr.Request):
    """The "Wrong? It is a ..." button."""
    label, missing = _corrected_label(kept, choice, new_name)
    if missing:
        return missing
    try:
        saved = save_correction(kept["image"], label, kept["source"], request,
                                prediction=kept["prediction"])
    except SketchError as error:
        return f"⚠️ Not saved: {md(error)}"
    return correction_message(saved)


def _teacher(request):
    """The user, once allowed to teach (NotAllowed says why not)."""
    user = user_of(request)
    app.access.check_teach(user)
    return user


@pop_up_errors
def add_example(image, label, source, request: gr.Request = None):
    """Add one labeled example (owner only when exposed). Returns the
    ingest result (with the new image's id) and a message."""
    user = _teacher(request)
    image = as_image(image)
    if image is None:
        raise BadImage("Draw or snap an example first.")
    added = ingest.add_example(app.model.store, image, label, source,
                               f"teach:{user or 'local'}")
    return added, _added_message(added)


def _added_message(added):
    where = "kept for testing" if added["split"] == "test" and added["created"] else "for training"
    total = added["total"]
    return (f"Added to **{md(added['label'])}** ({where}); the class has {total} "
            f"image{'' if total == 1 else 's'}. Press **Retrain now** to use them.")


@pop_up_errors
def retrain_now(request: gr.Request = None, progress=gr.Progress()):
    """The same job as `python -m model.train`; the demo serves the new version
    at once when it goes live. Returns (message, result)."""
    _teacher(request)

    def report(stage, done, total):
        if stage in ("features", "training") and total:
            progress((done, total), desc=stage,
                     unit="images" if stage == "features" else "epochs")
    progress(0, desc="starting")
    before = app.model.store.model_version()
    result = app.model.retrain(on_progress=report)
    after = app.model.store.model_version(result["version"])
    return (training_message(result) + class_changes_line(
        teach.class_changes(before and before["metrics"], after["metrics"]))), result


def class_changes_line(changes):
    """Markdown: each class's test accuracy before and after a training."""
    def pct(value):
        return "not measured" if value is None else f"{value:.0%}"
    parts = []
    for name, old, new in changes:
        if old is None or new is None:
            parts.append(f"{md(name)} {pct(new)}" + (" (new)" if old is None else ""))
        else:
            mark = " ▲" if new > old + 1e-9 else " ▼" if new < old - 1e-9 else ""
            parts.append(f"{md(name)} {pct(old)} → {pct(new)}{mark}")
    return ("\n\nTest accuracy per class: " + ", ".join(parts) + ".") if parts else ""


def retrain_ui(request: gr.Request, progress=gr.Progress()):
    message = retrain_now(request, progress)[0]
    listing = class_listing()
    return message, model_info(), *([class_choices(listing=listing)] * 3), *teach_view(
        listing=listing)


def fix_and_retrain_ui(kept, choice, new_name, request: gr.Request, progress=gr.Progress()):
    """"Save and retrain", for whoever may teach: the correction is accepted,
    the model retrained, and the same input answered again. Returns (message,
    model line)."""
    label, missing = _corrected_label(kept, choice, new_name)
    if missing:
        return missing, gr.skip()
    try:
        _teacher(request)
        saved = save_correction(kept["image"], label, kept["source"], request,
                                prediction=kept["prediction"], accept=True)
        message, _ = retrain_now(request, progress)
        again = _classify_or_blank(as_image(kept["image"]))
    except gr.Error as error:
        return f"⚠️ {error.message}", model_info()
    except SketchError as error:
        return f"⚠️ {md(error)}", model_info()
    now = verdict(again).removeprefix("### ")
    return (f"✅ Corrected to **{md(saved['label'])}** and retrained. {message}\n\n"
            f"**The same {'drawing' if kept['source'] == 'sketch' else 'picture'} now:** "
            f"{now}"), model_info()


# -- the Teach tab: class cards, adding, undoing, class edits -----------------------------
# Its handlers answer (message, class list, training plan, cards, card names,
# card text, taught ids): `teach_update`. An example that cannot be added says
# why in the message; raised, the error would put a badge over the class box
# that blocks it until closed.

def class_listing():
    """(every class's card (service.teach.cards), None), or ([], the message
    of the error that kept them from being read). One answer's class lists,
    cards and training plan are made from one listing, so they agree."""
    try:
        return teach.cards(app.model.store), None
    except SketchError as error:
        return [], f"⚠️ {md(error)}"


def teach_view(selected=None, listing=None):
    """(cards gallery, their class names, the chosen card's text); the
    chosen class's card is highlighted."""
    found, error = listing or class_listing()
    if error:
        return [], [], error
    gallery = [(app.pictures.card(c["recent"]), f"{c['name']} · {c['images']}")
               for c in found]
    names = [c["name"] for c in found]
    chosen = names.index(selected) if selected in names else None
    return (gr.update(value=gallery, selected_index=chosen), names,
            card_text(found, selected))


def card_text(found, selected):
    card = next((c for c in found if c["name"] == selected), None)
    if card is None:
        return ("Pick a class card, or type a new class name above the pad, then add "
                "examples: draw, snap or record them with the webcam, or upload files.")
    return (f"**{md(card['name'])}**: {card['train']} for training, {card['test']} kept for "
            f"testing. Examples you add now go to this class.")


def teach_update(message, label, taught):
    listing = class_listing()
    return (message, class_choices(label or _KEEP, listing), train_plan(listing),
            *teach_view(label, listing), taught)


def _remember(taught, added):
    """The ids this page added, newest last, for Undo (bounded)."""
    return ((taught or []) + [added["id"]])[-settings.undo_depth:]


def _taught(image, label, source, taught, request):
    try:
        added, message = add_example(image, label, source, request)
    except gr.Error as error:
        return teach_update(f"⚠️ Not added: {error.message}", None, taught)
    return teach_update(message, added["label"], _remember(taught, added))


def teach_sketch_ui(image, label, taught, request: gr.Request):
    """The Teach tab's "Add drawing" -> teach_update's outputs and the pad,
    emptied for the next drawing once this one is added."""
    out = _taught(image, label, "sketch", taught, request)
    return (*out, None if out[-1] != taught else gr.skip())


def teach_photo_ui(frame, label, taught, request: gr.Request):
    """"Add this frame": the webcam's latest frame."""
    return _taught(frame, label, "webcam", taught, request)


def teach_files_ui(paths, label, taught, request: gr.Request):
    """Uploaded files, each one example of the chosen class."""
    try:
        user = _teacher(request)
        if not paths:
            raise BadImage("Choose one or more image files first.")
        if len(paths) > settings.teach_files:
            raise BadImage(f"At most {settings.teach_files} files at once.")
        files = [(Path(p).name, _read_upload(p)) for p in paths]
        added, errors = teach.add_files(app.model.store, files, label,
                                        f"teach:{user or 'local'}")
    except SketchError as error:
        return None, *teach_update(f"⚠️ Not added: {md(error)}", None, taught)
    for one in added:
        taught = _remember(taught, one)
    tested = sum(a["split"] == "test" and a["created"] for a in added)
    total = added[-1]["total"]
    message = (f"Added {len(added)} image{'s' if len(added) != 1 else ''} to "
               f"**{md(added[-1]['label'])}** ({tested} kept for testing); the class has "
               f"{total} image{'' if total == 1 else 's'}. Press **Retrain now** to use them.")
    if errors:
        message += " Not added: " + "; ".join(f"{md(n)} ({md(why)})" for n, why in errors[:5])
    return None, *teach_update(message, added[-1]["label"], taught)


def _read_upload(path):
    try:
        with open(path, "rb") as f:
            return f.read(MAX_IMAGE_BYTES + 1)
    except OSError as error:
        raise BadImage(f"The file could not be read: {error.strerror}.") from None


def undo_ui(taught, label, request: gr.Request):
    """Take back the last example this page added."""
    try:
        _teacher(request)
        if not taught:
            return teach_update("Nothing to undo: no example was added from this page.",
                                label, taught)
        *rest, last = taught
        taken = teach.take_back(app.model.store, last)
    except SketchError as error:
        return teach_update(f"⚠️ {md(error)}", label, taught)
    if not taken:
        return teach_update("The last example was already gone (deleted or taken back "
                            "elsewhere): nothing was changed.", label, rest)
    return teach_update("↩️ The last example was taken back (the labeler can restore it "
                        "from its deleted images).", label, rest)


RECORD, STOP = "⏺ Hold to record", "⏹ Recording: let go to stop"


class Recording:
    """One page's Record button: the class webcam frames join and how many
    more may (`label` None: not recording). Changed in place, never sent back
    as an event's output: a frame answered after Stop must not write back the
    recording it began with."""

    def __init__(self):
        self.label, self.left = None, 0

    def start(self, label, frames):
        self.label, self.left = label, frames

    def stop(self):
        self.label, self.left = None, 0

    def take(self):
        """The class the next frame joins (counting it), or None."""
        label = self.label
        if label is not None:
            self.left -= 1
            if self.left <= 0:
                self.stop()
        return label


def record_ui(recording, label, request: gr.Request):
    """Record pressed (held, on the page) / let go: while recording, webcam
    frames join the chosen class, at most `record_frames` of them. Returns
    (button, message)."""
    if recording.label is not None:
        recording.stop()
        return gr.update(value=RECORD), "Recording stopped."
    try:
        _teacher(request)
        if not label:
            raise NotFound("Pick a class card (or type a class name) first.")
    except SketchError as error:
        return gr.update(value=RECORD), f"⚠️ {md(error)}"
    recording.start(label, settings.record_frames)
    return (gr.update(value=STOP),
            f"Recording **{md(label)}**: hold sketches up to the camera, one after another. "
            f"Let go of the button (or press it again) to stop.")


def teach_frame_ui(frame, recording, taught, request: gr.Request):
    """Each webcam frame of the Teach tab: kept for "Add this frame", and,
    while recording, added to the class recording was started for. Returns
    (frame, button) + the Teach update."""
    label = recording.take() if frame is not None else None
    if label is None:
        return (frame, gr.skip()) + (gr.skip(),) * 6 + (taught,)
    button = gr.update(value=RECORD) if recording.label is None else gr.skip()
    try:
        added, message = add_example(frame, label, "webcam", request)
    except gr.Error as error:
        return (frame, button, f"⚠️ Frame not added: {error.message}") + (
            gr.skip(),) * 5 + (taught,)
    return (frame, button) + teach_update(message, added["label"], _remember(taught, added))


def pick_card(names, evt: gr.SelectData):
    """A card clicked: its class is the one examples go to."""
    name = names[evt.index] if names and 0 <= evt.index < len(names) else None
    return gr.update(value=name), card_text(teach.cards(app.model.store), name)


def chosen_card(label):
    try:
        return card_text(teach.cards(app.model.store), label)
    except SketchError as error:
        return f"⚠️ {md(error)}"


def add_class_ui(name, taught, request: gr.Request):
    try:
        _teacher(request)
        _, name, created = labeling.create_class(app.model.store, name or "")
    except SketchError as error:
        return "", *teach_update(f"⚠️ Not added: {md(error)}", None, taught)
    message = (f"Class **{md(name)}** added: add examples to it." if created
               else f"There is a class **{md(name)}** already: it is chosen.")
    return "", *teach_update(message, name, taught)


def rename_class_ui(label, new_name, taught, request: gr.Request):
    try:
        _teacher(request)
        old, new = labeling.rename_class(app.model.store, _class_id(label), new_name or "")
    except SketchError as error:
        return "", *teach_update(f"⚠️ Not renamed: {md(error)}", label, taught)
    return "", *teach_update(f"**{md(old)}** is now **{md(new)}**, in every model version "
                             f"too.", new, taught)


def delete_class_ui(label, taught, request: gr.Request):
    try:
        _teacher(request)
        name = labeling.delete_class(app.model.store, _class_id(label), forget_deleted=True)
    except SketchError as error:
        return teach_update(f"⚠️ Not deleted: {md(error)}", label, taught)
    return teach_update(f"Class **{md(name)}** deleted.", None, taught)


def _class_id(label):
    found = {c["name"]: c["id"] for c in labeling.class_names(app.model.store)}
    if label not in found:
        raise NotFound("Pick a class card first.")
    return found[label]


def accept_waiting_ui(request: gr.Request):
    """Accept the pending corrections from the Teach tab (owner only when
    exposed): their images join the next training."""
    try:
        user = _teacher(request)
        accepted = teach.accept_waiting(app.model.store, f"demo:{user or 'local'}",
                                        settings.accept_at_once)
    except SketchError as error:
        return f"⚠️ {md(error)}", train_plan(), model_info(), accept_button()
    return (f"Accepted {accepted} correction{'s' if accepted != 1 else ''}: "
            f"{'they join' if accepted != 1 else 'it joins'} the next training.",
            train_plan(), model_info(), accept_button())


def accept_button():
    """"Accept waiting corrections" shows only while some wait."""
    try:
        return gr.update(visible=labeling.pending_count(app.model.store) > 0)
    except SketchError:
        return gr.update(visible=False)


def train_plan(listing=None):
    """What "Retrain now" will learn from: the labeled images per class, and
    the corrections that wait for review and are not used until accepted."""
    found, error = listing or class_listing()
    if error:
        return ""
    try:
        pending = labeling.pending_count(app.model.store)
    except SketchError:
        return ""
    classes = [c for c in found if c["images"]]
    total = sum(c["images"] for c in classes)
    text = (f"**Retrain now** learns from {total} labeled image{'s' if total != 1 else ''}: "
            + ", ".join(f"{md(c['name'])} {c['images']}" for c in classes) + ".")
    if pending:
        text += (f" {pending} correction{'s wait' if pending != 1 else ' waits'} for review "
                 f"and {'are' if pending != 1 else 'is'} not used until accepted"
                 f"{' in the labeler' if not app.access.exposed else ''}, or with "
                 f"**Accept waiting corrections** below.")
    return text


# -- page state ----------------------------------------------------------------------

_KEEP = object()


def class_choices(value=_KEEP, listing=None):
    """A Dropdown update listing the known classes (keeping the selection unless given)."""
    names = [c["name"] for c in (listing or class_listing())[0]]
    return gr.update(choices=names) if value is _KEEP else gr.update(choices=names, value=value)


def page_state(ui):
    """What the banner, model line, timer, class lists and cards show now."""
    listing = class_listing()
    choices = class_choices(listing=listing)
    cards, names, _ = teach_view(listing=listing)
    return {ui.banner: status(), ui.info: model_info(),
            ui.timer: gr.Timer(active=app.model.phase is Phase.PREPARING),
            ui.sketch_choice: choices, ui.photo_choice: choices, ui.teach_class: choices,
            ui.train_plan: train_plan(listing), ui.cards: cards, ui.card_names: names,
            ui.accept: accept_button()}


def watch_live(seen):
    """An open page's periodic check: when a version other than the one it
    showed went live (the labeler retrained, another demo process), the header
    says so and the class lists follow. Returns (header, version seen, class
    lists x3); nothing changes while the version stays."""
    try:
        live = app.model.store.live_version_id()
    except SketchError:
        live = seen
    if live == seen:
        return (gr.skip(), seen) + (gr.skip(),) * 3
    header = model_info()
    if seen is not None and live is not None:
        header = f"🔄 **Version {live} is live now** (was {seen}) · " + header
    return (header, live) + (class_choices(),) * 3


def on_load(ui, request):
    if app.model.phase is Phase.IDLE:
        app.model.start()
    app.model.retry_if_due()
    allowed = gr.update(interactive=app.access.may_teach(user_of(request)))
    try:
        live = app.model.store.live_version_id()
    except SketchError:
        live = None
    return {**page_state(ui), ui.note: access_note(request), ui.seen_version: live,
            **{button: allowed for button in ui.teaching}}


# -- sign-in ------------------------------------------------------------------------

def owner_login(owner, password, tries=None):
    """Gradio's sign-in check for the owner's --auth: at most `login_tries`
    wrong passwords a minute for a user name, so a password cannot be
    guessed at hundreds a second."""
    tries = tries or Tries(lambda: settings.login_tries)

    def check(user, given):
        try:
            tries.check(user)
        except TooManyTries:
            return False
        right = user == owner and hmac.compare_digest(str(given).encode(), password.encode())
        if not right:
            tries.failed(user)
        return right
    return check

