"""The Gradio demo: draw or show a sketch, see the top-3 classes, correct the
model, teach it new classes and retrain it without a restart.

    python demo.py [--db PATH] [--host H] [--port P] [--share] [--auth U:P] [--alpha A]

Importing this module builds the interface (`demo`) and the plain handler
functions but does no TensorFlow work and opens no database: the `App`
object creates the Store and the Classifier on first use. On a fresh
database it seeds a starter set of generated sketches and trains a first
model (service.starter) in the background while the page is already served.

Who may do what:
  * anyone who can open the page classifies and sends corrections; corrections
    from anonymous users stay pending until reviewed in the labeler;
  * with --auth (or SKETCHLAB_AUTH="user:password") every request is signed in
    and that user is the owner: the owner's corrections are accepted at once,
    and only the owner may add examples and retrain;
  * without --auth, adding examples and retraining work only while the app is
    not exposed (bound to a loopback address, no --share link). A --share link
    or a non-loopback --host without --auth disables them, so retraining is
    never reachable through a public link without a password. (The labeler
    is a separate app and is never mounted here.)
"""
import argparse
import functools
import logging
import os
import sys
import threading
import time
from pathlib import Path

import gradio as gr

from db import Store, clean_label, default_path
from db.cli import add_db_option
from db.errors import SketchError, StorageError
from model.errors import BadImage, BlankSketch, NoLiveModel, NotEnoughData, WeightsMissing
from model.images import decode, preprocess, stored_form, to_rgb

log = logging.getLogger("sketchlab.demo")

# Below this top-class probability the page says it is unsure instead of naming a class.
UNSURE_BELOW = 0.6
TOP_K = 3
BLANK_LABEL = "draw something"
# Queue: a classification takes ~10-40 ms of CPU; two run at once (2 cores),
# the rest wait in a bounded queue. A full queue answers at once with
# Gradio's "This application is currently busy. Please try again." instead of
# letting requests pile up behind a slow backlog.
CLASSIFY_CONCURRENCY = 2
QUEUE_MAX_SIZE = 64
# Webcam: a frame every 0.3 s (~3 per second); a stream ends after two minutes.
STREAM_EVERY = 0.3
STREAM_TIME_LIMIT = 120
WEBCAM_STREAMS = 4
# After a failed start, a request or a page load checks at most this often
# whether its cause is gone (the weights file is in place, or `python -m
# model.train` made a model) and then starts again in the background.
RETRY_FAILED_START_S = 10
# One Teach example in TEST_EVERY goes to the test split, so a new class is measured.
TEST_EVERY = 5
AUTH_ENV = "SKETCHLAB_AUTH"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_FILE_SIZE = "20mb"
CANVAS = (400, 400)
BRUSH_RADIUS = 4
PAD_HEIGHT = 520
# Select the brush, so drawing starts at the first stroke (Gradio opens the
# editor with no tool selected). Retries while the editor is still rendering.
PICK_BRUSH_JS = """
() => {
  const pick = (id, tries) => {
    const brush = document.querySelector(`#${id} button[aria-label="Brush"]`);
    if (brush) {
      if (!brush.classList.contains("highlight")) brush.click();
    } else if (tries > 0) {
      setTimeout(() => pick(id, tries - 1), 250);
    }
  };
  pick("sketchpad", 40);
  pick("teach-pad", 40);
}
"""


class NotAllowed(Exception):
    """An action reserved to the signed-in owner."""


class App:
    """What the handlers share: settings, the Store and the Classifier, all lazy.

    The Store opens one SQLite connection per thread, so this one object is
    safe to use from every Gradio worker thread.
    """

    def __init__(self):
        self.configure()

    def configure(self, db=None, alpha=None, owner=None, exposed=False, share=False):
        """(Re)set the settings; the next use opens `db` afresh."""
        self.db_path = str(db) if db else default_path()
        self.alpha = alpha
        self.owner = owner
        self.exposed = exposed
        self.share = share
        self.share_url = None
        self._lock = threading.Lock()
        self._train_lock = threading.Lock()
        self._store = None
        self._classifier = None
        self._thread = None
        self.phase = "idle"        # idle, preparing, ready, failed
        self.problem = None        # the SketchError that keeps the model from serving
        self.retry_at = 0.0        # when a request may retry a failed start
        self.progress = ""
        self.last_training = None

    # -- lazy parts -----------------------------------------------------------

    @property
    def store(self):
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = Store(self.db_path)
        return self._store

    def start(self, wait=False, again=False):
        """Prepare the model (seed, first training, load) in a background thread;
        `again` runs it anew once the last attempt has ended."""
        with self._lock:
            if self._thread is None or (again and not self._thread.is_alive()):
                self.phase, self.problem = "preparing", None
                self._thread = threading.Thread(target=self._prepare, name="first-model",
                                                daemon=True)
                self._thread.start()
            thread = self._thread
        if wait:
            thread.join()
        return self

    def wait_ready(self, timeout=None):
        if self._thread is not None:
            self._thread.join(timeout)
        return self.phase == "ready"

    def _prepare(self):
        from service.starter import ensure_first_model
        try:
            with self._train_lock:
                if self.store.live_version_id() is None:
                    self.progress = "seeding the starter set"
                    result = ensure_first_model(self.store, alpha=self.alpha,
                                                on_progress=self._report)
                    self.last_training = result
                self.progress = "loading the model"
                self._load_classifier()
        except SketchError as error:
            log.warning("model unavailable: %s", error)
            self._failed(error)
        except Exception as error:  # shown on the page rather than lost in a thread
            log.exception("preparing the model failed")
            self._failed(SketchError(f"Preparing the model failed: {type(error).__name__}: "
                                     f"{error}"))

    def _failed(self, problem):
        self.problem = problem
        self.retry_at = time.monotonic() + RETRY_FAILED_START_S
        self.phase = "failed"

    def _report(self, stage, done, total):
        if stage == "features":
            self.progress = f"computing features {done}/{total}"
        elif stage == "training":
            self.progress = f"training epoch {done} (at most {total})"
        elif stage == "seeded":
            self.progress = f"stored {done} starter sketches"

    def _load_classifier(self):
        from model.classifier import Classifier
        classifier = Classifier(self.store)
        self._classifier = classifier
        self.problem = None
        self.phase = "ready"
        self.progress = ""

    def classifier(self):
        """The Classifier, or the SketchError saying why there is none (never random weights)."""
        if self.phase == "idle":
            self.start(wait=True)
        self.retry_if_due()
        if self._classifier is not None:
            return self._classifier
        if self.problem is not None:
            raise type(self.problem)(str(self.problem))
        raise NoLiveModel("The first model is still being trained on the starter sketches "
                          f"({self.progress or 'starting'}); this takes under a minute. "
                          "Try again shortly.")

    def retry_if_due(self):
        """After a failed start, start again in the background once its cause may
        be gone: the missing weights file is in place, or another process trained
        a model. Checked at most every RETRY_FAILED_START_S (a stat or one query)."""
        if self.phase != "failed" or time.monotonic() < self.retry_at:
            return
        self.retry_at = time.monotonic() + RETRY_FAILED_START_S
        weights = getattr(self.problem, "path", None)
        if (os.path.exists(weights) if weights else self.store.live_version_id() is not None):
            self.start(again=True)

    def classify(self, image):
        classifier = self.classifier()
        return classifier.classify(image, k=TOP_K)

    def after_training(self, result):
        """Serve the new version at once when it went live (no restart)."""
        self.last_training = result
        if self._classifier is None:
            self._load_classifier()
        else:
            self._classifier.refresh()

    # -- who may do what ----------------------------------------------------

    def user(self, request):
        return getattr(request, "username", None) if request is not None else None

    def is_owner(self, request):
        return self.owner is not None and self.user(request) == self.owner

    def may_teach(self, request):
        if self.owner is not None:
            return self.is_owner(request)
        return not self.exposed

    def check_teach(self, request):
        if not self.may_teach(request):
            if self.owner is not None:
                raise NotAllowed(f"Only the owner ({self.owner}) may add examples and retrain.")
            raise NotAllowed("Adding examples and retraining are disabled because this app is "
                             "shared without a password. Restart it with --auth user:password "
                             f"(or {AUTH_ENV}=user:password) and sign in as the owner.")


app = App()


# -- the boundary: named exceptions become gr.Error once, here ----------------------

def boundary(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (SketchError, NotAllowed) as error:
            raise gr.Error(str(error), title=_error_title(error)) from None
    return wrapper


def _error_title(error):
    return {WeightsMissing: "Backbone weights missing", NoLiveModel: "No model yet",
            NotEnoughData: "Not enough examples", BadImage: "Unreadable image",
            BlankSketch: "Blank image", NotAllowed: "Owner only",
            StorageError: "Storage problem"}.get(type(error), "Error")


# -- images ----------------------------------------------------------------------

def sketch_image(value):
    """A Sketchpad value (a dict; we want its `composite`) -> PIL image or None."""
    if value is None:
        return None
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


def check_ink(image):
    """BlankSketch for an image without ink (cheap: NumPy at a small size)."""
    preprocess(image, 32)


# -- classification ------------------------------------------------------------------

def label_value(result):
    """A classify result -> a gr.Label value (top classes with confidences)."""
    return {label: float(p) for label, p in result["top"]}


def verdict(result):
    """The sentence above the confidences: a class, an honest 'not sure', or 'draw something'."""
    if result is None:
        return f"### ✏️ {BLANK_LABEL.capitalize()}"
    label, p = result["label"], result["confidence"]
    if p < UNSURE_BELOW:
        return (f"### 🤔 Not sure. Maybe a **{_md(label)}** ({p:.0%})? "
                f"Keep drawing, or correct it below.")
    return f"### It's a **{_md(label)}** ({p:.0%})"


def _md(text):
    """Escape a user-chosen class name for Markdown."""
    return "".join("\\" + c if c in "\\`*_{}[]()#+-.!|<>~" else c for c in str(text))


def _classify_or_blank(image):
    """(result, image) or (None, image) when there is no ink."""
    if image is None:
        return None
    try:
        return app.classify(image)
    except BlankSketch:
        return None


@boundary
def classify_sketch(value):
    """API /classify_sketch: a Sketchpad value -> gr.Label value ("draw something" when blank)."""
    result = _classify_or_blank(sketch_image(value))
    return label_value(result) if result else BLANK_LABEL


@boundary
def classify_photo(image):
    """API /classify_photo: one image (webcam frame or upload) -> gr.Label value."""
    image = as_image(image)
    if image is None:
        raise BadImage("No image was sent.")
    result = _classify_or_blank(image)
    return label_value(result) if result else BLANK_LABEL


def _shown(image, source, result):
    """What the page keeps of a classification, for a later correction."""
    return {"image": image, "source": source, "prediction": result}


@boundary
def sketch_ui(value):
    """Draw tab (live on change and on submit) -> (label, verdict, kept state)."""
    image = sketch_image(value)
    result = _classify_or_blank(image)
    return (label_value(result) if result else BLANK_LABEL, verdict(result),
            _shown(image, "sketch", result) if result else None)


@boundary
def photo_ui(image, source="upload"):
    """Webcam/upload tab -> (label, verdict, kept state)."""
    image = as_image(image)
    if image is None:
        return None, "### 📷 Show a sketch to the camera or upload an image", None
    result = _classify_or_blank(image)
    if result is None:
        return BLANK_LABEL, "### 📷 No sketch in view: hold a drawing up to the camera", None
    return label_value(result), verdict(result), _shown(image, source, result)


def webcam_ui(frame):
    """One streamed webcam frame (several a second)."""
    return _live(photo_ui, frame, "webcam")


def sketch_live_ui(value):
    """The Draw tab as the user draws, at every stroke."""
    return _live(sketch_ui, value)


def _live(handler, *args):
    """A UI handler on a live event: errors (no model yet, weights missing) go in
    the verdict, as a pop-up several times a second would bury the page."""
    try:
        return handler.__wrapped__(*args)
    except (SketchError, NotAllowed) as error:
        return None, f"### ⚠️ {_md(error)}", None


def keep_frame(live):
    """The Snapshot button: keep the current webcam frame and its prediction."""
    if not live:
        return (None, None, "### 📷 Start the webcam and hold up a sketch first", None)
    return (live["image"], label_value(live["prediction"]), verdict(live["prediction"]),
            live)


def uploaded_ui(path):
    label, text, shown = photo_ui(path, "upload")
    return (shown["image"] if shown else None), label, text, shown


# -- corrections --------------------------------------------------------------------

@boundary
def correct(image, label, source="upload", request: gr.Request = None, prediction=None):
    """API /correct: store the image, the prediction it replaces and the right label.

    The correction is pending (waits for review in the labeler) unless it
    comes from the signed-in owner, in which case it is accepted at once and
    labels the image. Returns what was saved.
    """
    store = app.store
    label = clean_label(label or "")
    image = as_image(image)
    if image is None:
        raise BadImage("No image was sent with the correction.")
    if source not in ("sketch", "webcam", "upload"):
        source = "upload"
    check_ink(image)
    if prediction is None:
        try:
            prediction = app.classify(image)
        except (NoLiveModel, WeightsMissing, NotEnoughData):
            prediction = None  # corrections are still collected without a model
    data, width, height = stored_form(image)
    accept = app.is_owner(request)
    sender = app.user(request) or _anonymous(request)
    correction_id, image_id = store.record_correction(
        {"data": data, "width": width, "height": height}, label, source, sender,
        prediction=prediction, accept=accept)
    return {"correction": correction_id, "image": image_id, "label": label,
            "predicted": prediction["label"] if prediction else None,
            "status": "accepted" if accept else "pending", "sender": sender}


def _anonymous(request):
    """Anonymous senders are told apart by address, so that rate limits and
    "reject everything from this sender" apply to one client, not to all."""
    client = getattr(request, "client", None)
    host = getattr(client, "host", None)
    return f"anonymous@{host}" if host else "anonymous"


def correct_ui(shown, choice, new_name, request: gr.Request):
    """The "Wrong? It is a ..." button: the typed new class wins over the list."""
    if not shown:
        return "Nothing to correct yet: classify a sketch first."
    label = (new_name or "").strip() or choice
    if not label:
        return "Pick the right class from the list or type a new one."
    try:
        saved = correct.__wrapped__(shown["image"], label, shown["source"], request,
                                    prediction=shown["prediction"])
    except (SketchError, NotAllowed) as error:
        return f"⚠️ Not saved: {_md(error)}"
    if saved["status"] == "accepted":
        return (f"✅ Saved and accepted: it is a **{_md(saved['label'])}** "
                f"(correction #{saved['correction']}). It is used at the next retrain.")
    return (f"✅ Saved: it is a **{_md(saved['label'])}** (correction #{saved['correction']}, "
            f"pending review in the labeler). Thank you!")


# -- teaching and retraining ---------------------------------------------------------

@boundary
def add_example(image, label, source, request: gr.Request = None):
    """Add one labeled example (owner only when exposed). Returns a message."""
    app.check_teach(request)
    label = clean_label(label or "")
    image = as_image(image)
    if image is None:
        raise BadImage("Draw or snap an example first.")
    check_ink(image)
    store = app.store
    counts = {c["name"]: c["images"] for c in store.classes()}
    before = counts.get(label, 0)
    split = "test" if (before + 1) % TEST_EVERY == 0 else "train"
    data, width, height = stored_form(image)
    by = f"teach:{app.user(request) or 'local'}"
    image_id, created = store.add_image(data=data, width=width, height=height, source=source,
                                        split=split, label=label, labeled_by=by)
    if not created:
        store.set_label([image_id], label, by)
    total = {c["name"]: c["images"] for c in store.classes()}.get(label, 0)
    where = "kept for testing" if split == "test" and created else "for training"
    return (f"Added to **{_md(label)}** ({where}); the class has {total} "
            f"image{'' if total == 1 else 's'}. "
            f"Press **Retrain now** to use them.")


def teach_sketch_ui(value, label, request: gr.Request):
    # The pad is left as it is: setting a Sketchpad's value from the server
    # removes or freezes its canvas in Gradio 6.31; its trash button clears it.
    message = add_example(sketch_image(value), label, "sketch", request)
    return message + " Clear the pad (trash icon) to draw the next one.", class_choices(label)


def teach_photo_ui(path, label, request: gr.Request):
    message = add_example(path, label, "webcam", request)
    return message, class_choices(label)


@boundary
def retrain_now(request: gr.Request = None, progress=gr.Progress()):
    """The same job as `python -m model.train`; the demo switches to the new
    version when it goes live."""
    app.check_teach(request)
    from model.train import retrain
    if not app._train_lock.acquire(blocking=False):
        raise NotAllowed("A training is already running; wait for it to finish.")
    try:
        store = app.store
        options = {} if store.live_version_id() is not None else (
            {"alpha": app.alpha} if app.alpha else {})

        def report(stage, done, total):
            app._report(stage, done, total)
            if stage in ("features", "training") and total:
                progress((done, total), desc=stage, unit="images" if stage == "features"
                         else "epochs")
        progress(0, desc="starting")
        result = retrain(store, options, on_progress=report)
        app.after_training(result)
    finally:
        app.progress = ""
        app._train_lock.release()
    accuracy = result["test_accuracy"]
    text = (f"Trained version {result['version']} on {result['train_images']} images in "
            f"{result['seconds']:.0f} s; test accuracy "
            f"{'n/a' if accuracy is None else f'{accuracy:.1%}'}")
    if result["live"]:
        return text + ". **It is live now.**"
    return (text + f", not better than the live version "
            f"({result['live_accuracy_before']:.1%}), so version {result['live_version']} "
            f"stays live.")


def retrain_ui(request: gr.Request, progress=gr.Progress()):
    message = retrain_now(request, progress)
    return message, model_info(), *([class_choices()] * 3)


# -- page state ----------------------------------------------------------------------

def model_info():
    """Markdown: the live version, its classes and its test accuracy."""
    try:
        versions = app.store.model_versions()
    except SketchError as error:
        return f"⚠️ {_md(error)}"
    live = next((v for v in versions if v["live"]), None)
    if live is None:
        return "**Model:** none yet."
    metrics = live["metrics"]
    accuracy = metrics.get("accuracy")
    acc = "n/a" if accuracy is None else f"{accuracy:.1%}"
    return (f"**Model version {live['id']}** · classes: "
            f"{', '.join(_md(c) for c in live['classes'])} · test accuracy {acc} "
            f"on {metrics.get('eval_images', 0)} {metrics.get('eval_source', 'test')} images · "
            f"backbone {live['backbone']}")


def status():
    """Markdown banner: what is missing and how to provide it, or what is going on."""
    problem = app.problem
    if isinstance(problem, WeightsMissing):
        text = (f"## ⚠️ No predictions: backbone weights missing\n\n{_md(problem)}\n\n"
                "Corrections are still saved. Once the file is in place, reload this page "
                f"after {RETRY_FAILED_START_S} s: the demo picks it up without a restart.")
    elif problem is not None:
        text = f"## ⚠️ No predictions yet\n\n{_md(problem)}"
    elif app.phase in ("preparing", "idle"):
        text = (f"⏳ **Preparing the first model** ({_md(app.progress or 'starting')}): "
                "a starter set of circles, squares, triangles and stars is being learned. "
                "This takes under a minute.")
    else:
        text = ""
    if app.share and app.share_url is None and app.phase != "idle":
        text += ("\n\nℹ️ No public share link could be made (offline?); "
                 "the demo is served locally only.")
    return text


def access_note(request):
    if app.may_teach(request):
        return ("Examples you add here are labeled at once. One in "
                f"{TEST_EVERY} is kept for testing.")
    return f"🔒 {_not_allowed_text(request)}"


def _not_allowed_text(request):
    try:
        app.check_teach(request)
    except NotAllowed as error:
        return str(error)
    return ""


_KEEP = object()


def class_choices(value=_KEEP):
    """A Dropdown update listing the known classes (keeping the selection unless given)."""
    try:
        names = [c["name"] for c in app.store.classes()]
    except SketchError:
        names = []
    return gr.update(choices=names) if value is _KEEP else gr.update(choices=names, value=value)


def on_load(request: gr.Request):
    allowed = app.may_teach(request)
    if app.phase == "idle":
        app.start()
    app.retry_if_due()
    return (status(), model_info(), gr.Timer(active=app.phase == "preparing"),
            class_choices(), class_choices(), class_choices(),
            access_note(request), gr.update(interactive=allowed),
            gr.update(interactive=allowed), gr.update(interactive=allowed))


def on_tick():
    preparing = app.phase == "preparing"
    return (status(), model_info(), gr.Timer(active=preparing),
            class_choices(), class_choices(), class_choices())


# -- the interface ---------------------------------------------------------------------

def correction_box(prefix, shown):
    with gr.Group():
        gr.Markdown("**Wrong? It is a …**", padding=True)
        with gr.Row():
            choice = gr.Dropdown(label="known class", choices=[], elem_id=f"{prefix}-choice",
                                 scale=2)
            new = gr.Textbox(label="or a new class", placeholder="e.g. house", max_lines=1,
                             elem_id=f"{prefix}-new", scale=2)
        send = gr.Button("Save correction", elem_id=f"{prefix}-send", size="sm")
        saved = gr.Markdown(elem_id=f"{prefix}-saved", padding=True)
    send.click(correct_ui, [shown, choice, new], [saved], api_visibility="private",
               concurrency_limit=4, concurrency_id="write")
    return choice


def build():
    with gr.Blocks(title="SketchLab") as page:
        gr.Markdown("# SketchLab\nDraw a shape, or hold a paper sketch up to the webcam; "
                    "correct the model when it is wrong, teach it new classes.")
        banner = gr.Markdown(elem_id="status")
        info = gr.Markdown(elem_id="model-info")
        timer = gr.Timer(1.0, active=False)
        sketch_shown = gr.State(None)
        photo_live = gr.State(None)
        photo_kept = gr.State(None)

        with gr.Tab("Draw", id="draw"):
            with gr.Row():
                with gr.Column(scale=3):
                    pad = gr.Sketchpad(
                        label="Sketchpad", type="pil", image_mode="RGB", elem_id="sketchpad",
                        canvas_size=CANVAS, fixed_canvas=True, layers=False, transforms=(),
                        height=PAD_HEIGHT,
                        brush=gr.Brush(default_size=BRUSH_RADIUS, colors=["#000000"],
                                       color_mode="fixed"),
                        format="png")
                    submit = gr.Button("Classify", variant="primary", elem_id="classify")
                with gr.Column(scale=2):
                    sketch_verdict = gr.Markdown(verdict(None), elem_id="sketch-verdict")
                    sketch_label = gr.Label(num_top_classes=TOP_K, show_heading=False,
                                            label="Top 3", elem_id="sketch-label")
                    sketch_choice = correction_box("sketch-correct", sketch_shown)

        with gr.Tab("Webcam / upload", id="webcam"):
            with gr.Row():
                with gr.Column():
                    cam = gr.Image(label="Webcam (hold up a paper sketch)", sources=["webcam"],
                                   streaming=True, type="pil", elem_id="webcam",
                                   webcam_options=gr.WebcamOptions(mirror=False))
                    snap = gr.Button("Snapshot: keep this frame", elem_id="snapshot")
                    upload = gr.Image(label="…or upload an image",
                                      sources=["upload", "clipboard"], type="filepath",
                                      image_mode=None, elem_id="upload")
                with gr.Column():
                    live_verdict = gr.Markdown(elem_id="webcam-verdict")
                    live_label = gr.Label(num_top_classes=TOP_K, show_heading=False,
                                          label="Live top 3", elem_id="webcam-label")
                    kept_view = gr.Image(label="Kept frame", interactive=False, height=200,
                                         elem_id="kept")
                    kept_verdict = gr.Markdown(elem_id="kept-verdict")
                    kept_label = gr.Label(num_top_classes=TOP_K, show_heading=False,
                                          label="Top 3 of the kept frame", elem_id="kept-label")
                    photo_choice = correction_box("photo-correct", photo_kept)

        with gr.Tab("Teach", id="teach") as teach_tab:
            note = gr.Markdown(elem_id="teach-note")
            teach_class = gr.Dropdown(label="class (pick one or type a new name)", choices=[],
                                      allow_custom_value=True, elem_id="teach-class")
            with gr.Row():
                with gr.Column():
                    teach_pad = gr.Sketchpad(
                        label="Draw an example", type="pil", image_mode="RGB",
                        canvas_size=CANVAS, fixed_canvas=True, layers=False, transforms=(),
                        height=PAD_HEIGHT,
                        brush=gr.Brush(default_size=BRUSH_RADIUS, colors=["#000000"],
                                       color_mode="fixed"),
                        format="png", elem_id="teach-pad")
                    add_drawing = gr.Button("Add drawing", elem_id="add-drawing")
                with gr.Column():
                    teach_photo = gr.Image(label="…or snap one with the webcam",
                                           sources=["webcam"], type="filepath",
                                           image_mode=None, elem_id="teach-photo",
                                           webcam_options=gr.WebcamOptions(mirror=False))
                    add_photo = gr.Button("Add photo", elem_id="add-photo")
            teach_result = gr.Markdown(elem_id="teach-result")
            retrain_button = gr.Button("Retrain now", variant="primary", elem_id="retrain")
            retrain_result = gr.Markdown(elem_id="retrain-result")

        # UI events (private: the API has its own named endpoints below).
        live = dict(api_visibility="private", concurrency_id="classify",
                    concurrency_limit=CLASSIFY_CONCURRENCY, show_progress="hidden")
        pad.change(sketch_live_ui, [pad], [sketch_label, sketch_verdict, sketch_shown],
                   trigger_mode="always_last", **live)
        submit.click(sketch_ui, [pad], [sketch_label, sketch_verdict, sketch_shown], **live)
        cam.stream(webcam_ui, [cam], [live_label, live_verdict, photo_live],
                   stream_every=STREAM_EVERY, time_limit=STREAM_TIME_LIMIT,
                   concurrency_limit=WEBCAM_STREAMS, concurrency_id="webcam",
                   api_visibility="private", show_progress="hidden", trigger_mode="always_last")
        snap.click(keep_frame, [photo_live], [kept_view, kept_label, kept_verdict, photo_kept],
                   api_visibility="private", queue=False)
        upload.upload(uploaded_ui, [upload], [kept_view, kept_label, kept_verdict, photo_kept],
                      **live)
        # Clearing a pad with its trash button drops the brush: select it again.
        add_drawing.click(teach_sketch_ui, [teach_pad, teach_class], [teach_result, teach_class],
                          api_visibility="private", concurrency_id="write", concurrency_limit=4)
        pad.clear(None, js=PICK_BRUSH_JS)
        teach_pad.clear(None, js=PICK_BRUSH_JS)
        add_photo.click(teach_photo_ui, [teach_photo, teach_class], [teach_result, teach_class],
                        api_visibility="private", concurrency_id="write", concurrency_limit=4)
        retrain_button.click(retrain_ui, None,
                             [retrain_result, info, sketch_choice, photo_choice, teach_class],
                             api_visibility="private", concurrency_id="train",
                             concurrency_limit=1)
        page.load(on_load, None, [banner, info, timer, sketch_choice, photo_choice, teach_class,
                                  note, add_drawing, add_photo, retrain_button],
                  api_visibility="private", queue=False)
        page.load(None, js=PICK_BRUSH_JS)
        teach_tab.select(None, js=PICK_BRUSH_JS)
        timer.tick(on_tick, None, [banner, info, timer, sketch_choice, photo_choice,
                                   teach_class], api_visibility="private", queue=False)

        # The named API (gradio_client): hidden components, one gr.Label per classify call.
        with gr.Column(visible=False):
            api_label = gr.Label(num_top_classes=TOP_K)
            api_photo = gr.Image(type="filepath", image_mode=None)
            api_text = gr.Textbox()
            api_source = gr.Radio(["sketch", "webcam", "upload"], value="upload")
            api_saved = gr.JSON()
            api_sketch_button = gr.Button()
            api_photo_button = gr.Button()
            api_correct_button = gr.Button()
        api = dict(concurrency_id="classify", concurrency_limit=CLASSIFY_CONCURRENCY)
        api_sketch_button.click(classify_sketch, [pad], [api_label], api_name="classify_sketch",
                                **api)
        api_photo_button.click(classify_photo, [api_photo], [api_label],
                               api_name="classify_photo", **api)
        api_correct_button.click(correct, [api_photo, api_text, api_source], [api_saved],
                                 api_name="correct", concurrency_id="write", concurrency_limit=4)

    page.queue(max_size=QUEUE_MAX_SIZE, default_concurrency_limit=1)
    return page


demo = build()


# -- command line ----------------------------------------------------------------------

def parse_auth(text):
    """'user:password' -> (user, password), or None for no auth."""
    if not text:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise SystemExit(f"--auth / {AUTH_ENV} must look like user:password")
    return user, password


def parser():
    p = argparse.ArgumentParser(prog="python demo.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_db_option(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    p.add_argument("--share", action="store_true", help="also make a public Gradio link")
    p.add_argument("--auth", default=None,
                   help=f"user:password protecting the app (default: ${AUTH_ENV}); "
                   "that user is the owner")
    p.add_argument("--alpha", type=float, default=None,
                   help="backbone width for the first training of a fresh database "
                   "(0.25/0.5/0.75/1.0; default: the training default)")
    return p


def launch_options(host, port, share=False, auth=None):
    """The keyword arguments of `demo.launch()`. The tests launch with these too,
    so the upload limit and error display they check are the ones served."""
    return dict(server_name=host, server_port=port, share=share, auth=auth,
                auth_message="Sign in as the SketchLab owner." if auth else None,
                prevent_thread_lock=True, show_error=True, max_file_size=MAX_FILE_SIZE,
                ssr_mode=False, quiet=True)


def main(argv=None):
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    auth = parse_auth(args.auth or os.environ.get(AUTH_ENV))
    exposed = args.share or args.host not in LOOPBACK
    app.configure(db=args.db, alpha=args.alpha, owner=auth[0] if auth else None,
                  exposed=exposed, share=args.share)
    if exposed and not auth:
        print("note: no --auth: adding examples and retraining are disabled while the app is "
              "exposed (share link or non-loopback host).", flush=True)
    app.start()
    demo.launch(**launch_options(args.host, args.port, share=args.share, auth=auth))
    app.share_url = demo.share_url
    if args.share and demo.share_url is None:
        print(f"warning: no public share link could be made (no internet access, or the "
              f"Gradio share server is unreachable). Still serving locally on "
              f"{demo.local_url}", flush=True)
    elif demo.share_url:
        print(f"Public link: {demo.share_url}", flush=True)
    print(f"SketchLab demo on {demo.local_url} (database {app.db_path})", flush=True)
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
