"""python -m bench.ceiling: the framework's ceiling, a trivial Gradio app.

The demo's drawing pad (same settings and elem_id) whose change event answers
with four of the demo's five outputs (a gr.Label, a verdict, the state a
correction refers to, a picture of what the model saw; not the look-alike
gallery, which the demo sends when it changes), and /classify_sketch
and /classify_photo with the demo's input components and a gr.Label answer;
the same queue size and concurrency, and the same Blocks (demo_guard's: no
traffic summary after each event); handlers that return fixed values at
once, except that each stroke's picture is a new one (a white square with
one black pixel that moves), as the demo's picture of each drawing is, sent
inside the answer as the demo's is (demo_guard.Seen). What Gradio alone
costs per call on this machine: the load benches start it beside the demo
and measure both in the same run.
"""
import argparse
import itertools
import sys

import gradio as gr
from PIL import Image

from demo_guard import Blocks, Pad, Seen
from demo_handlers import settings
from model.classifier import TOP_K

ANSWER = {"circle": 0.7, "square": 0.2, "star": 0.1}
SIDE = 224
_answers = itertools.count()


def answer(_value):
    return ANSWER


def seen():
    """A new picture at each call, of the demo's size and mode."""
    n = next(_answers) % (SIDE * SIDE)
    picture = Image.new("L", (SIDE, SIDE), 255)
    picture.putpixel((n % SIDE, n // SIDE), 0)
    return picture


def stroke_answer(value):
    return ANSWER, "### It's a **circle** (70%)", value, seen()


def build():
    with Blocks() as page:
        pad = Pad("Sketchpad", "sketchpad", size=settings.canvas,
                  brush=settings.brush_radius, side=settings.pad_side)
        photo = gr.Image(type="filepath", image_mode=None)
        label = gr.Label(num_top_classes=TOP_K)
        same = dict(concurrency_id="classify", concurrency_limit=settings.classify_concurrency)
        outputs = [label, gr.Markdown(), gr.State(None),
                   Seen("What the model saw", "sketch-seen", settings.seen_height)]
        pad.change(stroke_answer, [pad], outputs, trigger_mode="always_last",
                   api_visibility="private", show_progress="hidden", **same)
        gr.Button().click(answer, [photo], [label], api_name="classify_sketch", **same)
        gr.Button().click(answer, [photo], [label], api_name="classify_photo", **same)
    page.queue(max_size=settings.queue_max_size, default_concurrency_limit=1)
    return page


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=7870, help="port on 127.0.0.1")
    args = parser.parse_args(argv)
    build().launch(server_name="127.0.0.1", server_port=args.port, show_error=False,
                   max_file_size=settings.max_file_size, ssr_mode=False, quiet=True,
                   enable_monitoring=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
