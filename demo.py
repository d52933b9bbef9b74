"""The Gradio demo: draw or show a sketch, see the top-3 classes, correct the
model, teach it new classes and retrain it without a restart.

    python demo.py [--db PATH] [--host H] [--port P] [--share] [--auth U:P] [--alpha A]

This module is the page's layout, its event wiring and `main()`; the
handlers (demo_handlers) are thin functions over the application layer.
Importing it builds the page but does no TensorFlow work and opens no database. On a
fresh database the first request seeds a starter set of generated sketches
and trains a first model in the background while the page is already served.
Who may do what (teaching and retraining need --auth once the app is shared)
is service.access's rule.
"""
import argparse
import json
import logging
import os
import sys
from types import SimpleNamespace

import gradio as gr
from starlette.middleware import Middleware

import demo_guard

from db.cli import add_db_option
from demo_handlers import (RECORD, STOP, Recording, accept_waiting_ui, add_class_ui, app, card_text,
                           chosen_card, classify_photo, classify_sketch, cleared_sketch, correct, correct_ui,
                           delete_class_ui, fix_and_retrain_ui, keep_frame, on_load,
                           owner_login, page_state, pick_card, record_ui, rename_class_ui,
                           retrain_ui, settings, sketch_live_ui, sketch_ui, teach_files_ui,
                           teach_frame_ui, teach_photo_ui, teach_sketch_ui, undo_ui, uploaded_ui,
                           verdict, watch_live, webcam_ui)
from model.classifier import TOP_K
from model.sheet import Track
from service import access, ingest
from service.access import AUTH_ENV, is_loopback

# Record is held: pressing starts it, letting go stops it. The button stays
# a plain toggle for keys (and for a browser without pointer events). The
# press clicks it at once; letting go clicks it again once the button shows
# the handlers' STOP label (so the stop reads the state the start wrote),
# and the click the browser makes of the press and release is not passed on.
HOLD_TO_RECORD_JS = """
(() => {
  const STOP = STOP_LABEL;
  let held = false, swallow = false;
  const button = () => document.querySelector("#record");
  const recording = () => button() && button().innerText.trim() === STOP;
  document.addEventListener("pointerdown", (e) => {
    if (!e.isTrusted || e.button !== 0 || !e.target.closest("#record") || recording()) return;
    held = true;
    swallow = true;
    button().click();
  }, true);
  const release = (e) => {
    if (!held || !e.isTrusted) return;
    held = false;
    // The browser's click of this press comes right after, or not at all.
    setTimeout(() => { swallow = false; }, 0);
    let tries = 50;
    const stop = () => {
      if (recording()) button().click();
      else if (tries-- > 0) setTimeout(stop, 100);
    };
    stop();
  };
  document.addEventListener("pointerup", release, true);
  document.addEventListener("pointercancel", release, true);
  // A phone's browser opens its menu on a long press, over the held button,
  // and may take the pointer away (which stops the recording).
  document.addEventListener("contextmenu", (e) => {
    if (e.target.closest && e.target.closest("#record")) e.preventDefault();
  }, true);
  document.addEventListener("click", (e) => {
    if (swallow && e.isTrusted && e.target.closest("#record")) {
      swallow = false;
      e.stopImmediatePropagation();
      e.preventDefault();
    }
  }, true);
})();
""".replace("STOP_LABEL", json.dumps(STOP))

# On a phone the pad fills the width, square, and its answer shows without
# scrolling: the intro and the page's margins give way, the toolbar's
# buttons are finger-sized. Gradio scopes `css` to its container; the
# page's margins are outside it, so they are set in the page's head.
PHONE_HEAD = ("<style>@media (max-width: 640px) { .main.app { padding: 6px 4px !important; } }"
              "</style>")

PHONE_CSS = """
@media (max-width: 640px) {
  #intro p { display: none; }
  #intro h1 { font-size: 1.3em; margin: 0; }
  #model-info { font-size: 0.75em; line-height: 1.3; }
  #sketch-verdict h3, #webcam-verdict h3 { font-size: 1em; }
  /* The pads fill the width. */
  :is(#sketchpad, #teach-pad) .html-container { padding: 0; }
  /* Finger-sized: the tabs, the page's buttons, and its boxes and lists. */
  button[role=tab], :is(#classify, #snapshot, #record, #add-drawing, #add-photo, #add-files,
      #add-class, #rename, #undo, #delete-class, #retrain, #accept-waiting,
      #sketch-correct-send, #sketch-correct-retrain, #photo-correct-send,
      #photo-correct-retrain) { min-height: 44px; }
  #upload button.icon { min-width: 44px; min-height: 44px; }
  :is(#sketch-correct-choice, #sketch-correct-new, #photo-correct-choice, #photo-correct-new,
      #teach-class, #new-class, #rename-to) :is(input, textarea, li[role=option]) {
    min-height: 44px; }
}
/* Held with a finger: no text selection or long-press menu. */
#record { touch-action: none; user-select: none; -webkit-user-select: none;
          -webkit-touch-callout: none; }
"""

def drawing_pad(label, elem_id):
    return demo_guard.Pad(label, elem_id, size=settings.canvas, brush=settings.brush_radius,
                          side=settings.pad_side)


def seen_view(label, elem_id):
    """The preprocessed input beside the answer: why an answer is wrong."""
    return demo_guard.Seen(label, elem_id, settings.seen_height)


LOOKS_LIKE_CSS = """
.looks-like { display: flex; flex-wrap: wrap; gap: 8px; }
.looks-like figure { margin: 0; text-align: center; }
.looks-like img { display: block; border: 1px solid var(--border-color-primary);
                  border-radius: var(--radius-sm); }
"""


def like_view(elem_id):
    """The training examples nearest to the input: the evidence for an answer
    (demo_handlers.Pictures.like_html)."""
    return gr.HTML(label="Looks like these (nearest training examples)", show_label=True,
                   container=True, elem_id=elem_id, js_on_load=None,
                   min_height=settings.like_side + 48, css_template=LOOKS_LIKE_CSS)


def correction_box(prefix, kept, info):
    """"Wrong? It is a …": save a correction, or (whoever may teach) save it,
    retrain and see the new answer for the same input."""
    with gr.Group():
        gr.Markdown("**Wrong? It is a …**", padding=True)
        with gr.Row():
            choice = gr.Dropdown(label="known class", choices=[], elem_id=f"{prefix}-choice",
                                 scale=2)
            new = gr.Textbox(label="or a new class", placeholder="e.g. house", max_lines=1,
                             elem_id=f"{prefix}-new", scale=2)
        with gr.Row():
            send = gr.Button("Save correction", elem_id=f"{prefix}-send", size="sm")
            fix = gr.Button("Save and retrain", elem_id=f"{prefix}-retrain", size="sm")
        saved = gr.Markdown(elem_id=f"{prefix}-saved", padding=True)
    send.click(correct_ui, [kept, choice, new], [saved], **_writes())
    fix.click(fix_and_retrain_ui, [kept, choice, new], [saved, info],
              api_visibility="private", concurrency_id="train", concurrency_limit=1)
    return SimpleNamespace(choice=choice, new=new, saved=saved, fix=fix)


def _writes():
    return dict(api_visibility="private", concurrency_id="write",
                concurrency_limit=settings.write_concurrency)


def build():
    ui = SimpleNamespace()
    # Uploads need no sign-in, so their temporary files must not pile up.
    with demo_guard.Blocks(title="SketchLab",
                           delete_cache=(settings.temp_sweep_every,
                                         settings.temp_file_age)) as page:
        gr.Markdown("# SketchLab\nDraw a shape, or hold a paper sketch up to the webcam; "
                    "correct the model when it is wrong, teach it new classes.",
                    elem_id="intro")
        ui.banner = gr.Markdown(elem_id="status")
        ui.info = gr.Markdown(elem_id="model-info")
        ui.timer = gr.Timer(1.0, active=False)
        ui.watch = gr.Timer(settings.version_check_every)
        ui.seen_version = gr.State(None)
        sketch_kept = gr.State(None)
        photo_live = gr.State(None)
        # Where the sheet was in this session's last webcam frame (model.sheet.Track;
        # Gradio gives each session a deep copy of a State's value).
        webcam_track = gr.State(Track())
        photo_kept = gr.State(None)

        with gr.Tab("Draw", id="draw"):
            with gr.Row():
                with gr.Column(scale=3):
                    pad = drawing_pad("Sketchpad", "sketchpad")
                    submit = gr.Button("Classify", variant="primary", elem_id="classify")
                with gr.Column(scale=2):
                    sketch_verdict = gr.Markdown(verdict(None), elem_id="sketch-verdict")
                    sketch_label = gr.Label(num_top_classes=TOP_K, show_heading=False,
                                            label="Top 3", elem_id="sketch-label")
                    sketch_seen = seen_view("What the model saw", "sketch-seen")
                    sketch_like = like_view("sketch-like")
                    sketch_box = correction_box("sketch-correct", sketch_kept, ui.info)
                    ui.sketch_choice = sketch_box.choice

        with gr.Tab("Webcam / upload", id="webcam"):
            with gr.Row():
                with gr.Column():
                    cam = demo_guard.Image(label="Webcam (hold up a paper sketch)", sources=["webcam"],
                                   streaming=True, type="pil", elem_id="webcam",
                                   webcam_options=gr.WebcamOptions(mirror=False))
                    snap = gr.Button("Snapshot: keep this frame", elem_id="snapshot")
                    upload = demo_guard.Image(label="…or upload an image",
                                      sources=["upload", "clipboard"], type="filepath",
                                      image_mode=None, elem_id="upload")
                with gr.Column():
                    live_verdict = gr.Markdown(elem_id="webcam-verdict")
                    live_label = gr.Label(num_top_classes=TOP_K, show_heading=False,
                                          label="Live top 3", elem_id="webcam-label")
                    live_seen = seen_view("What the model sees", "webcam-seen")
                    with gr.Row():
                        kept_view = gr.Image(label="Kept frame", interactive=False,
                                             height=settings.seen_height, elem_id="kept")
                        kept_seen = seen_view("What the model saw", "kept-seen")
                    kept_verdict = gr.Markdown(elem_id="kept-verdict")
                    kept_label = gr.Label(num_top_classes=TOP_K, show_heading=False,
                                          label="Top 3 of the kept frame", elem_id="kept-label")
                    kept_like = like_view("kept-like")
                    photo_box = correction_box("photo-correct", photo_kept, ui.info)
                    ui.photo_choice = photo_box.choice

        with gr.Tab("Teach", id="teach"):
            ui.note = gr.Markdown(elem_id="teach-note")
            taught = gr.State([])
            ui.card_names = card_names = gr.State([])
            with gr.Row():
                with gr.Column(scale=2, min_width=260):
                    ui.cards = demo_guard.Gallery(label="Classes: pick a card to teach it",
                                                  columns=3, allow_preview=False,
                                                  object_fit="contain", height="auto",
                                                  interactive=False, buttons=[],
                                                  elem_id="class-cards")
                    with gr.Row():
                        new_class = gr.Textbox(label="new class", placeholder="e.g. house",
                                               max_lines=1, elem_id="new-class", scale=3)
                        ui.add_class = gr.Button("Add class", elem_id="add-class", scale=1,
                                                 size="sm")
                with gr.Column(scale=3):
                    ui.teach_class = gr.Dropdown(label="class (pick one or type a new name)",
                                                 choices=[], allow_custom_value=True,
                                                 elem_id="teach-class")
                    ui.card = gr.Markdown(card_text([], None), elem_id="card-info")
                    with gr.Tab("Draw"):
                        teach_pad = drawing_pad("Draw an example", "teach-pad")
                        ui.add_drawing = gr.Button("Add drawing", elem_id="add-drawing")
                    with gr.Tab("Webcam"):
                        teach_cam = demo_guard.Image(
                            label="Webcam", sources=["webcam"], streaming=True, type="pil",
                            elem_id="teach-photo", webcam_options=gr.WebcamOptions(mirror=False))
                        teach_frame = gr.State(None)
                        recording = gr.State(Recording())
                        with gr.Row():
                            ui.add_photo = gr.Button("Add this frame", elem_id="add-photo")
                            ui.record = gr.Button(RECORD, elem_id="record")
                    with gr.Tab("Upload"):
                        teach_files = gr.File(label="Image files", file_count="multiple",
                                              file_types=["image"], type="filepath",
                                              elem_id="teach-files")
                        ui.add_files = gr.Button("Add files", elem_id="add-files")
                    teach_result = gr.Markdown(elem_id="teach-result")
                    with gr.Row():
                        ui.undo = gr.Button("↩️ Undo last example", elem_id="undo", size="sm")
                        ui.delete_class = gr.Button("Delete this class (when empty)",
                                                    elem_id="delete-class", size="sm")
                    with gr.Row():
                        rename_to = gr.Textbox(label="rename this class to", max_lines=1,
                                               elem_id="rename-to", scale=3)
                        ui.rename = gr.Button("Rename", elem_id="rename", scale=1, size="sm")
            ui.train_plan = gr.Markdown(elem_id="train-plan")
            with gr.Row():
                ui.accept = gr.Button("Accept waiting corrections", elem_id="accept-waiting",
                                      visible=False)
                ui.retrain = gr.Button("Retrain now", variant="primary", elem_id="retrain")
            retrain_result = gr.Markdown(elem_id="retrain-result")

        # UI events (private: the API has its own named endpoints below).
        live = dict(api_visibility="private", concurrency_id="classify",
                    concurrency_limit=settings.classify_concurrency, show_progress="hidden")
        # A new answer replaces what a correction refers to, and its picture.
        sketch_out = [sketch_label, sketch_verdict, sketch_kept, sketch_seen, sketch_like]
        answering = [pad.change(sketch_live_ui, [pad, sketch_kept], sketch_out,
                                trigger_mode="always_last", **live),
                     submit.click(sketch_ui, [pad, sketch_kept], sketch_out, **live)]
        cam.stream(webcam_ui, [cam, webcam_track],
                   [live_label, live_verdict, photo_live, live_seen],
                   stream_every=settings.stream_every, time_limit=settings.stream_time_limit,
                   concurrency_limit=settings.webcam_streams, concurrency_id="webcam",
                   api_visibility="private", show_progress="hidden")
        kept_out = [kept_view, kept_label, kept_verdict, photo_kept, kept_seen, kept_like]
        snap.click(keep_frame, [photo_live], kept_out, **live)
        upload.upload(uploaded_ui, [upload], kept_out, **live)
        # What only whoever may teach can press.
        ui.teaching = [ui.add_drawing, ui.add_photo, ui.add_files, ui.record, ui.undo,
                       ui.add_class, ui.rename, ui.delete_class, ui.accept, ui.retrain,
                       sketch_box.fix, photo_box.fix]
        # The Teach tab: every action answers with teach_update's outputs.
        teach_out = [teach_result, ui.teach_class, ui.train_plan, ui.cards, card_names, ui.card,
                     taught]
        ui.add_drawing.click(teach_sketch_ui, [teach_pad, ui.teach_class, taught],
                             teach_out + [teach_pad], js=teach_pad.taking(), **_writes())
        ui.add_photo.click(teach_photo_ui, [teach_frame, ui.teach_class, taught], teach_out,
                           **_writes())
        ui.add_files.click(teach_files_ui, [teach_files, ui.teach_class, taught],
                           [teach_files] + teach_out, **_writes())
        ui.record.click(record_ui, [recording, ui.teach_class], [ui.record, teach_result],
                        api_visibility="private", queue=False)
        teach_cam.stream(teach_frame_ui, [teach_cam, recording, taught],
                         [teach_frame, ui.record] + teach_out,
                         stream_every=settings.stream_every,
                         time_limit=settings.stream_time_limit,
                         concurrency_limit=settings.webcam_streams, concurrency_id="webcam",
                         api_visibility="private", show_progress="hidden")
        ui.undo.click(undo_ui, [taught, ui.teach_class], teach_out, **_writes())
        ui.cards.select(pick_card, [card_names], [ui.teach_class, ui.card],
                        api_visibility="private", queue=False)
        ui.teach_class.input(chosen_card, [ui.teach_class], [ui.card],
                             api_visibility="private", queue=False)
        ui.add_class.click(add_class_ui, [new_class, taught], [new_class] + teach_out,
                           **_writes())
        ui.rename.click(rename_class_ui, [ui.teach_class, rename_to, taught],
                        [rename_to] + teach_out, **_writes())
        ui.delete_class.click(delete_class_ui, [ui.teach_class, taught], teach_out, **_writes())
        ui.accept.click(accept_waiting_ui, None, [retrain_result, ui.train_plan, ui.info,
                                                  ui.accept], **_writes())
        # An answer still on its way is about the drawing that is gone.
        pad.clear(cleared_sketch, None, sketch_out + [sketch_box.choice, sketch_box.new,
                                                      sketch_box.saved],
                  api_visibility="private", queue=False, cancels=answering)
        ui.retrain.click(retrain_ui, None, [retrain_result, ui.info, ui.sketch_choice,
                                            ui.photo_choice, ui.teach_class, ui.cards,
                                            card_names, ui.card],
                         api_visibility="private", concurrency_id="train", concurrency_limit=1)

        def load(request: gr.Request):
            return on_load(ui, request)

        def tick():
            return page_state(ui)
        state_outputs = [ui.banner, ui.info, ui.timer, ui.sketch_choice, ui.photo_choice,
                         ui.teach_class, ui.train_plan, ui.cards, card_names, ui.accept]
        page.load(load, None, state_outputs + [ui.note, ui.seen_version, *ui.teaching],
                  api_visibility="private",
                  queue=False)
        ui.timer.tick(tick, None, state_outputs, api_visibility="private", queue=False)
        ui.watch.tick(watch_live, [ui.seen_version], [ui.info, ui.seen_version, ui.sketch_choice,
                                                      ui.photo_choice, ui.teach_class],
                      api_visibility="private", queue=False, show_progress="hidden")

        # The named API (gradio_client): hidden components, one gr.Label per classify call.
        with gr.Column(visible=False):
            api_label = gr.Label(num_top_classes=TOP_K)
            api_photo = demo_guard.Image(type="filepath", image_mode=None)
            api_text = gr.Textbox()
            api_source = gr.Radio(list(ingest.CORRECTION_SOURCES), value="upload")
            api_saved = gr.JSON()
            api_sketch_button = gr.Button()
            api_photo_button = gr.Button()
            api_correct_button = gr.Button()
        api = dict(concurrency_id="classify", concurrency_limit=settings.classify_concurrency)
        api_sketch_button.click(classify_sketch, [api_photo], [api_label],
                                api_name="classify_sketch", **api)
        api_photo_button.click(classify_photo, [api_photo], [api_label],
                               api_name="classify_photo", **api)
        api_correct_button.click(correct, [api_photo, api_text, api_source], [api_saved],
                                 api_name="correct", concurrency_id="write",
                                 concurrency_limit=settings.write_concurrency)

    page.queue(max_size=settings.queue_max_size, default_concurrency_limit=1,
               status_update_rate=settings.queue_status_every)
    return page, ui


# The page, and its components that handlers answer by name.
demo, ui = build()


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
                                epilog="settings:\n" + settings.describe(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_db_option(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    p.add_argument("--share", action="store_true", help="also make a public Gradio link")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="a host name this computer reaches the demo by, besides localhost "
                   "(repeatable); on loopback without --share, requests naming any other "
                   "host are refused, which stops DNS rebinding")
    p.add_argument("--trusted-proxy", action="append", default=[], metavar="ADDRESS",
                   help="address of a reverse proxy in front of the demo whose "
                   "X-Forwarded-For names the client (repeatable); from any other address "
                   "the header is ignored")
    p.add_argument("--labeler-url", default=settings.labeler_url, metavar="URL",
                   help=f"where the labeler runs, linked from the header on this computer "
                   f"(default: {settings.labeler_url})")
    p.add_argument("--auth", default=None,
                   help=f"user:password protecting the app (default: ${AUTH_ENV}); "
                   "that user is the owner")
    p.add_argument("--alpha", type=float, default=None,
                   help="backbone width for the first training of a fresh database "
                   "(0.25/0.5/0.75/1.0; default: the training default)")
    return p


def launch_options(host, port, share=False, auth=None, allowed_hosts=(), proxies=()):
    """The keyword arguments of `demo.launch()`. The tests launch with these too,
    so the upload limit, error display and host guard they check are the ones
    served. Only a demo on this computer alone (loopback, no share link) is
    held to its host names: it lets anyone there teach and retrain, which a
    page reaching it by DNS rebinding must not; an exposed demo answers
    strangers anyway and keeps teaching for its owner. A demo behind a
    reverse proxy (`proxies`) is exposed: the proxy is there to serve others."""
    local = is_loopback(host) and not share and not proxies
    hosts = access.allowed_hosts(host, allowed_hosts) if local else None
    # The share tunnel reaches the app from this computer.
    proxies = {*proxies, *(access.LOOPBACK if share else ())}
    # uvicorn would believe X-Forwarded-For from loopback when launch builds
    # its config; demo_guard.Guard believes it from `proxies` only.
    os.environ["FORWARDED_ALLOW_IPS"] = ""
    return dict(server_name=host, server_port=port, share=share,
                auth=owner_login(*auth) if auth else None,
                auth_message="Sign in as the SketchLab owner." if auth else None,
                prevent_thread_lock=True, show_error=False, css=PHONE_CSS,
                head=PHONE_HEAD + f"<script>{HOLD_TO_RECORD_JS}</script>",
                max_file_size=settings.max_file_size, ssr_mode=False, quiet=True,
                enable_monitoring=False,  # its summary is not kept (demo_guard.Blocks.queue)
                app_kwargs={"middleware": [Middleware(demo_guard.Guard, blocks=demo,
                                                      hosts=hosts, proxies=proxies)]})


def main(argv=None):
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    auth = parse_auth(args.auth or os.environ.get(AUTH_ENV))
    exposed = args.share or not is_loopback(args.host) or bool(args.trusted_proxy)
    settings.labeler_url = args.labeler_url
    app.configure(db=args.db, alpha=args.alpha, owner=auth[0] if auth else None,
                  exposed=exposed, share=args.share)
    if exposed and not auth:
        print("note: no --auth: adding examples and retraining are disabled while the app is "
              "exposed (share link, non-loopback host or a proxy in front).", flush=True)
    app.model.start()
    demo.launch(**launch_options(args.host, args.port, share=args.share, auth=auth,
                                 allowed_hosts=args.allowed_host, proxies=args.trusted_proxy))
    app.share_url = demo.share_url
    if args.share and demo.share_url is None:
        print(f"warning: no public share link could be made (no internet access, or the "
              f"Gradio share server is unreachable). Still serving locally on "
              f"{demo.local_url}", flush=True)
    elif demo.share_url:
        print(f"Public link: {demo.share_url}", flush=True)
    print(f"SketchLab demo on {demo.local_url} (database {app.model.db_path})", flush=True)
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
