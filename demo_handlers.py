"""The demo's handlers: thin functions over the application layer (service/)
that turn Gradio values into calls and answers into what the page shows.
demo.py lays the page out and wires these to its events.

Named errors are translated here, once: a pop-up for buttons and API calls,
the verdict line for live events (strokes, webcam frames).
"""
import functools
import hmac
import logging
from pathlib import Path

import gradio as gr

from db import labeling
from db.errors import SketchError, StorageError
from model.errors import BadImage, BlankSketch, NoLiveModel, NotEnoughData, WeightsMissing
from model.images import decode, picture, to_rgb
from service import ingest, lifecycle
from service.access import Access, BrowserIds, NotAllowed, TooManyTries, Tries
from service.jobs import Busy
from service.lifecycle import LiveModel, Phase
from service.settings import Setting, Settings

log = logging.getLogger("sketchlab.demo")

settings = Settings(
    Setting("unsure_below", 0.6, "below this top-class probability the page says it is "
            "not sure instead of naming a class"),
    Setting("classify_concurrency", 2, "classifications run at once (one per core); a "
            "classification takes ~10-40 ms of CPU"),
    Setting("write_concurrency", 4, "corrections and taught examples stored at once"),
    Setting("queue_max_size", 64, "requests waiting in the queue; past it Gradio answers "
            "'busy' at once instead of letting a slow backlog pile up"),
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
    Setting("uploads_per_minute", 60, "uploads a minute from one browser (or, without its "
            "cookie, one address)"),
    Setting("all_uploads_per_minute", 600, "uploads a minute from everyone together"),
    Setting("upload_quota", 2_000_000_000, "bytes the upload folder may hold; past it "
            "uploads are refused (507) until old files are swept"),
    Setting("image_pixels", 12_000_000, "most pixels of an image the demo decodes (a 4000x3000 "
            "photo), read from its header first"),
    Setting("sketch_layers", 4, "most layers a sketchpad value may name (they are never "
            "decoded)"),
    Setting("sketch_blob_ids", 64, "sketchpad drawings held between their upload and their "
            "use; the oldest is dropped past this"),
    Setting("labeler_url", "http://127.0.0.1:7861/", "where the labeler runs (python -m "
            "labeler): the header links its review page when the demo is not exposed"),
    Setting("canvas", (400, 400), "sketchpad canvas size in pixels"),
    Setting("brush_radius", 4, "sketchpad brush size"),
    Setting("pad_height", 520, "sketchpad height on the page, in pixels"),
    Setting("seen_height", 200, "height of the kept frame and of what the model sees, in "
            "pixels"),
)

BLANK_LABEL = "draw something"
ERROR_TITLES = {WeightsMissing: "Backbone weights missing", NoLiveModel: "No model yet",
                NotEnoughData: "Not enough examples", BadImage: "Unreadable image",
                BlankSketch: "Blank image", NotAllowed: "Owner only", Busy: "Busy",
                StorageError: "Storage problem"}
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

def sketch_image(value):
    """A Sketchpad value (a dict; we want its `composite`) -> PIL image or None."""
    if isinstance(value, dict):
        value = value.get("composite")
    return as_image(value)


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


def _seen_or_blank(image):
    """(the model's answer, what it saw as a picture), or (None, None) when
    there is nothing (no ink) to classify."""
    if image is None:
        return None, None
    try:
        result, seen = app.model.classify_seen(image)
    except BlankSketch:
        return None, None
    return result, picture(seen)


@pop_up_errors
def classify_sketch(value):
    """API /classify_sketch: a Sketchpad value -> gr.Label value ("draw something" when blank)."""
    result = _classify_or_blank(sketch_image(value))
    return label_value(result) if result else BLANK_LABEL


@pop_up_errors
def classify_photo(image):
    """API /classify_photo: one image (webcam frame or upload) -> gr.Label value."""
    image = as_image(image)
    if image is None:
        raise BadImage("No image was sent.")
    result = _classify_or_blank(image)
    return label_value(result) if result else BLANK_LABEL


def read_sketch(value):
    """The Draw tab -> (label, verdict, what a correction refers to, what the
    model saw). A correction is bound to the drawing the shown answer is
    about, whose picture is beside it, never to a later or earlier canvas."""
    image = sketch_image(value)
    result, seen = _seen_or_blank(image)
    if result is None:
        return BLANK_LABEL, verdict(None), None, None
    return label_value(result), verdict(result), shown(image, "sketch", result, seen), seen


def cleared_sketch():
    """The Draw tab once its canvas is cleared: no answer, nothing to correct,
    no class chosen, no message left over from the drawing that is gone."""
    return BLANK_LABEL, verdict(None), None, None, None, "", ""


def read_photo(image, source="upload"):
    """The webcam/upload tab -> (label, verdict, what a correction refers to,
    what the model saw): the cropped, cleaned input shows why an answer is
    wrong and how to hold the paper better."""
    image = as_image(image)
    if image is None:
        return None, "### 📷 Show a sketch to the camera or upload an image", None, None
    result, seen = _seen_or_blank(image)
    if result is None:
        return (BLANK_LABEL, "### 📷 No sketch in view: hold a drawing up to the camera",
                None, None)
    return label_value(result), verdict(result), shown(image, source, result, seen), seen


def shown(image, source, result, seen=None):
    """What the page keeps of a classification, for a later correction."""
    return {"image": image, "source": source, "prediction": result, "seen": seen}


sketch_ui = pop_up_errors(read_sketch)
sketch_live_ui = errors_in_verdict(read_sketch, outputs=4)
webcam_ui = errors_in_verdict(functools.partial(read_photo, source="webcam"), outputs=4)


def uploaded_ui(path):
    """An uploaded file -> the kept view: (image, label, verdict, kept, seen)."""
    label, text, kept, seen = pop_up_errors(read_photo)(path, "upload")
    return (kept["image"] if kept else None), label, text, kept, seen


def keep_frame(live):
    """The Snapshot button: keep the current webcam frame and its prediction."""
    if not live:
        return None, None, "### 📷 Start the webcam and hold up a sketch first", None, None
    return (live["image"], label_value(live["prediction"]), verdict(live["prediction"]), live,
            live["seen"])


# -- corrections, teaching and retraining -------------------------------------------------

def save_correction(image, label, source, request, prediction=None):
    """Store a correction: accepted at once for the owner, pending review otherwise."""
    image = as_image(image)
    if image is None:
        raise BadImage("No image was sent with the correction.")
    user = user_of(request)
    return app.model.correct(image, label, source, user or _anonymous(request),
                             accept=app.access.is_owner(user), prediction=prediction)


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


def correct_ui(kept, choice, new_name, request: gr.Request):
    """The "Wrong? It is a ..." button: the typed new class wins over the list."""
    if not kept:
        return "Nothing to correct yet: classify a sketch first."
    label = (new_name or "").strip() or choice
    if not label:
        return "Pick the right class from the list or type a new one."
    try:
        saved = save_correction(kept["image"], label, kept["source"], request,
                                prediction=kept["prediction"])
    except SketchError as error:
        return f"⚠️ Not saved: {md(error)}"
    return correction_message(saved)


@pop_up_errors
def add_example(image, label, source, request: gr.Request = None):
    """Add one labeled example (owner only when exposed). Returns a message."""
    user = user_of(request)
    app.access.check_teach(user)
    image = as_image(image)
    if image is None:
        raise BadImage("Draw or snap an example first.")
    added = ingest.add_example(app.model.store, image, label, source,
                               f"teach:{user or 'local'}")
    where = "kept for testing" if added["split"] == "test" and added["created"] else "for training"
    total = added["total"]
    return (f"Added to **{md(added['label'])}** ({where}); the class has {total} "
            f"image{'' if total == 1 else 's'}. Press **Retrain now** to use them.")


@pop_up_errors
def retrain_now(request: gr.Request = None, progress=gr.Progress()):
    """The same job as `python -m model.train`; the demo serves the new version
    at once when it goes live."""
    app.access.check_teach(user_of(request))

    def report(stage, done, total):
        if stage in ("features", "training") and total:
            progress((done, total), desc=stage,
                     unit="images" if stage == "features" else "epochs")
    progress(0, desc="starting")
    return training_message(app.model.retrain(on_progress=report))


def retrain_ui(request: gr.Request, progress=gr.Progress()):
    return retrain_now(request, progress), model_info(), *([class_choices()] * 3)


def teach_sketch_ui(value, label, request: gr.Request):
    """The Teach tab's "Add drawing"; once added, the page empties the pad
    (demo.CLEAR_TEACH_PAD_JS): setting a Sketchpad's value from the server
    freezes its canvas in Gradio 6.31."""
    return _taught(sketch_image(value), label, "sketch", request)


def teach_photo_ui(path, label, request: gr.Request):
    return _taught(path, label, "webcam", request)


def _taught(image, label, source, request):
    """The Teach tab's (message, class list, training plan): an example that
    cannot be added says why in the message. Raised, the error would put a
    badge over the class box that blocks it until closed."""
    try:
        return add_example(image, label, source, request), class_choices(label), train_plan()
    except gr.Error as error:
        return f"⚠️ Not added: {error.message}", class_choices(), train_plan()


def train_plan():
    """What "Retrain now" will learn from: the labeled images per class, and
    the corrections that wait for review and are not used until accepted."""
    try:
        classes = [c for c in app.model.store.classes() if c["images"]]
        pending = labeling.pending_count(app.model.store)
    except SketchError:
        return ""
    total = sum(c["images"] for c in classes)
    text = (f"**Retrain now** learns from {total} labeled image{'s' if total != 1 else ''}: "
            + ", ".join(f"{md(c['name'])} {c['images']}" for c in classes) + ".")
    if pending:
        text += (f" {pending} correction{'s wait' if pending != 1 else ' waits'} for review "
                 f"and {'are' if pending != 1 else 'is'} not used until accepted"
                 f"{' in the labeler' if not app.access.exposed else ''}.")
    return text


# -- page state ----------------------------------------------------------------------

_KEEP = object()


def class_choices(value=_KEEP):
    """A Dropdown update listing the known classes (keeping the selection unless given)."""
    try:
        names = [c["name"] for c in app.model.store.classes()]
    except SketchError:
        names = []
    return gr.update(choices=names) if value is _KEEP else gr.update(choices=names, value=value)


def page_state(ui):
    """What the banner, model line, timer and class lists show now."""
    choices = class_choices()
    return {ui.banner: status(), ui.info: model_info(),
            ui.timer: gr.Timer(active=app.model.phase is Phase.PREPARING),
            ui.sketch_choice: choices, ui.photo_choice: choices, ui.teach_class: choices,
            ui.train_plan: train_plan()}


def on_load(ui, request):
    if app.model.phase is Phase.IDLE:
        app.model.start()
    app.model.retry_if_due()
    allowed = gr.update(interactive=app.access.may_teach(user_of(request)))
    return {**page_state(ui), ui.note: access_note(request), ui.add_drawing: allowed,
            ui.add_photo: allowed, ui.retrain: allowed}


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

