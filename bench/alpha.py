"""python -m bench.alpha: what each MobileNet width costs, alpha 0.25 against
alpha 1.0 (the stand-in for the genuine weights, shared/README.md), in one run.
The accuracy side is bench.webcam's (--alpha).

first run: what a new user waits for on a fresh machine. A fresh Python
process with a fresh KERAS_HOME (only the weights file) and a fresh database
imports the demo (which builds the page), starts the demo's live model as
`demo.py` does (seeding the starter set, converting the backbone to LiteRT,
training the first model, loading it) and answers one sketch through the
demo's handler; no HTTP server. Seconds from starting the process to the
model being ready and to the answer, its CPU seconds, and when each stage
of the first job began.
per frame: the backbone call the live sketchpad and webcam views make per
frame (`extractor(alpha, 224)` at batch 1, both cores, on the one-channel
input `preprocess(..., keep_grey=True)` gives), on Quick, Draw! test drawings
and on simulated webcam photos of them (bench/webcam_photos.py); p50/p95 of
wall clock and CPU time, the alphas interleaved so that other work on the
machine falls on both alike.
cold retrain: `model.train.retrain` with the default config on a fresh
database of the dev set (every feature computed; the one-off LiteRT
conversion done before, as in bench.retrain), with its CPU time (this
process and its feature workers) and test accuracy.
sizes: the weights file, the converted LiteRT files and the cached features
per image.

Prints a table and, as its last line, one JSON object."""
import argparse
import contextlib
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import (ALPHA, INPUT_SIZE, ROOT, SHARED_WEIGHTS, TRAIN_PER_CLASS, fill_store,
                          keras_home, machine, quickdraw, setup)

ALPHAS = (ALPHA, 1.0)
# The demo's webcam view sends a frame this often (demo_handlers.settings).
STREAM_EVERY_S = 0.3
# Calls of one alpha and input in a row before the other alpha's turn.
ROUND = 10
# Test drawings a class (and photos of them) the timed calls cycle through.
INPUTS_PER_CLASS = 25
WARMUP = 10
FIRST_RUN_TIMEOUT_S = 900
log = logging.getLogger("bench.alpha")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.alpha", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=200,
                        help="timed backbone calls per alpha and input kind (default 200)")
    parser.add_argument("--per-class", type=int, default=TRAIN_PER_CLASS,
                        help=f"train and test drawings per class in the cold retrain "
                             f"(default {TRAIN_PER_CLASS}, the dev set's split)")
    parser.add_argument("--skip-first-run", action="store_true",
                        help="leave out the first-run processes")
    args = parser.parse_args(argv)
    if args.frames < ROUND:
        parser.error(f"--frames takes at least {ROUND}")
    if not 1 <= args.per_class <= TRAIN_PER_CLASS:
        parser.error(f"--per-class takes 1..{TRAIN_PER_CLASS}")
    home = setup(alphas=ALPHAS)
    started = time.perf_counter()
    result = {"alphas": list(ALPHAS), "stand_in": {f"{a:g}": SHARED_WEIGHTS[a].name
                                                   for a in ALPHAS}}
    # First, while this process holds no TensorFlow: each run has the machine alone.
    if not args.skip_first_run:
        result["first_run"] = {f"{a:g}": first_run(a) for a in ALPHAS}
    result["backbone_load_s"], runs = load_backbones()
    result["per_frame_ms"], result["preprocess_webcam_ms"] = per_frame(runs, args.frames)
    result["cold_retrain"] = {f"{a:g}": cold_retrain(a, args.per_class) for a in ALPHAS}
    result["sizes"] = {f"{a:g}": sizes(home, a, result["cold_retrain"][f"{a:g}"])
                       for a in ALPHAS}
    result.update(frames=args.frames, per_class=args.per_class,
                  stream_every_s=STREAM_EVERY_S, engine={f"{a:g}": runs[a].engine for a in ALPHAS},
                  load_average=os.getloadavg(), seconds=round(time.perf_counter() - started, 1),
                  machine=machine())
    print_table(result)
    print(json.dumps(result))


# -- first run -------------------------------------------------------------------------

def first_run(alpha):
    """Runs `_first_run_child` in a fresh process on fresh files; its figures."""
    workdir = Path(tempfile.mkdtemp(prefix="sketchlab-bench-first-run-"))
    env = {**os.environ, "KERAS_HOME": str(keras_home((alpha,))), "TF_CPP_MIN_LOG_LEVEL": "3",
           "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(workdir / "gradio")}
    code = ("import sys; from bench.alpha import _first_run_child; "
            "_first_run_child(float(sys.argv[1]), sys.argv[2], float(sys.argv[3]))")
    print(f"first run, alpha {alpha:g} ...", flush=True)
    launched = time.time()
    done = subprocess.run([sys.executable, "-c", code, str(alpha), str(workdir / "demo.db"),
                           repr(launched)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=FIRST_RUN_TIMEOUT_S)
    if done.returncode != 0:
        sys.exit(f"the first run (alpha {alpha:g}) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _first_run_child(alpha, db, launched):
    """In the fresh process: the demo's start, as `demo.main` does it, then one
    sketch through the demo's handler. Prints one JSON line."""
    def since():
        return round(time.time() - launched, 2)
    imported = {"python_started_s": since()}
    import demo  # gradio, and the page built: what `python demo.py` does first
    from demo_handlers import read_sketch
    app = demo.app
    imported["demo_imported_s"] = since()
    app.configure(db=db, alpha=alpha)
    app.model.start()
    stages = {}
    while app.model.jobs.running():
        stages.setdefault(app.model.jobs.snapshot()["stage"], since())
        time.sleep(0.02)
    ready_s, cpu_ready = since(), _cpu_seconds(before={})
    status = app.model.jobs.wait()
    if status["state"] != "done":
        sys.exit(f"the first model failed: {status['error']}")
    from model.sketches import SHAPES, draw
    label, *_ = read_sketch(draw(SHAPES[0], np.random.default_rng(0)))
    training = app.model.last_training
    print(json.dumps({
        **imported, "stages_began_s": stages, "ready_s": ready_s, "answered_s": since(),
        "cpu_ready_s": round(cpu_ready, 1), "answer": label,
        "retrain_s": training["seconds"], "feature_s": training["feature_seconds"],
        "features_computed": training["features_computed"],
        "starter_accuracy": round(training["test_accuracy"], 4),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)},
        default=str))


# -- per frame ---------------------------------------------------------------------

def load_backbones():
    """({alpha: seconds to build, convert and check it}, {alpha: extractor})."""
    import keras  # imported before the clock starts
    from model.backbone import extractor
    log.info("keras %s", keras.__version__)
    seconds, runs = {}, {}
    for alpha in ALPHAS:
        started = time.perf_counter()
        runs[alpha] = extractor(alpha, INPUT_SIZE)
        seconds[f"{alpha:g}"] = round(time.perf_counter() - started, 1)
    return seconds, runs


def per_frame(runs, frames):
    """Backbone ms per frame at batch 1 by alpha and input kind, and the
    (alpha-independent) preprocessing of a webcam frame."""
    from bench import webcam_photos
    from model.errors import BlankSketch
    from model.images import preprocess
    doodles = [pixels for _, split, pixels in quickdraw(0, INPUTS_PER_CLASS) if split == "test"]
    inputs = {"sketch": [preprocess(d, INPUT_SIZE, keep_grey=True)[None] for d in doodles],
              "webcam": []}
    clock = []
    for index, doodle in enumerate(doodles):
        photo = webcam_photos.photo(doodle, seed=index).image
        with _timed(clock):
            try:
                seen = preprocess(photo, INPUT_SIZE, keep_grey=True)
            except BlankSketch:  # no sheet found: the demo classifies nothing
                continue
        inputs["webcam"].append(seen[None])
    channels = {kind: sorted({a.shape[-1] for a in arrays}) for kind, arrays in inputs.items()}
    times = {(alpha, kind): [] for alpha in runs for kind in inputs}
    for (alpha, kind), _ in times.items():
        for i in range(WARMUP):
            runs[alpha](inputs[kind][i])
    for start in range(0, frames, ROUND):
        for (alpha, kind), clocks in times.items():
            for i in range(start, start + ROUND):
                array = inputs[kind][i % len(inputs[kind])]
                with _timed(clocks):
                    runs[alpha](array)
    out = {}
    for (alpha, kind), clocks in times.items():
        figures = _percentiles(clocks)
        figures["input_channels"] = channels[kind]
        out.setdefault(f"{alpha:g}", {})[kind] = figures
    return out, _percentiles(clock)


@contextlib.contextmanager
def _timed(clocks):
    """Appends (wall s, CPU s of this process) of the block to `clocks`."""
    started, cpu = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        clocks.append((time.perf_counter() - started, time.process_time() - cpu))


def _percentiles(clocks):
    return {f"{clock}_p{q}": round(1000 * float(np.percentile([c[column] for c in clocks], q)), 2)
            for column, clock in enumerate(("wall", "cpu")) for q in (50, 95)}


# -- cold retrain --------------------------------------------------------------------

def cold_retrain(alpha, per_class):
    from db import Store
    from model.train import retrain
    print(f"cold retrain, alpha {alpha:g} ...", flush=True)
    path = Path(tempfile.mkdtemp(prefix="sketchlab-bench-")) / "bench.db"
    store = Store(path)
    fill_store(store, quickdraw(per_class, per_class))
    cpu = _cpu_seconds()
    summary = retrain(store, {"alpha": alpha})
    cpu = _cpu_seconds(before=cpu)
    return {"seconds": summary["seconds"], "cpu_s": round(cpu, 1),
            "feature_s": summary["feature_seconds"],
            "features_computed": summary["features_computed"],
            "features_per_s": round(summary["features_computed"] / summary["feature_seconds"], 1),
            "test_accuracy": round(summary["test_accuracy"], 4), "views": summary["views"],
            "train_images": summary["train_images"], "test_images": summary["test_images"],
            "epochs": summary["epochs_run"], "db": str(path)}


def _cpu_seconds(before=None):
    """CPU seconds of this process, its running children (the feature workers)
    and its ended ones; with `before` (a dict this returned), the time since."""
    ticks = os.sysconf("SC_CLK_TCK")
    now = {"self": time.process_time(), "ended": _ended_children()}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        if int(fields[1]) == os.getpid():  # the parent pid
            now[entry.name] = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    if before is None:
        return now
    return sum(value - before.get(key, 0.0) for key, value in now.items())


def _ended_children():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# -- sizes -------------------------------------------------------------------------

def sizes(home, alpha, retrained):
    from db import Store
    from model.backbone import weights_filename
    from model.features import feature_key
    models = Path(home) / "models"
    weights = models / weights_filename(alpha, INPUT_SIZE)
    litert = sorted(models.glob(f"sketchlab-{weights.stem}-*.tflite"))
    store = Store(retrained["db"])
    key = feature_key(alpha, INPUT_SIZE)
    (vector,) = store.features([store.labeled_images("train")[0][0]], key, 1).values()
    views = retrained["views"]
    return {"weights_bytes": weights.stat().st_size,
            "litert_bytes": {"grey" if p.name.endswith("-grey-u8.tflite") else "colour":
                             p.stat().st_size for p in litert},
            "feature_bytes_per_view": len(vector), "views": views,
            "feature_bytes_per_train_image": views * len(vector),
            "feature_bytes_in_db": store.count_features(key) * len(vector)}


# -- report --------------------------------------------------------------------------

def print_table(result):
    alphas = [f"{a:g}" for a in result["alphas"]]
    rows = []
    first = result.get("first_run")
    if first:
        rows += [("first run: demo imported (s)", [first[a]["demo_imported_s"] for a in alphas]),
                 ("first run: model ready (s)", [first[a]["ready_s"] for a in alphas]),
                 ("first run: first answer (s)", [first[a]["answered_s"] for a in alphas]),
                 ("first run: CPU to ready (s)", [first[a]["cpu_ready_s"] for a in alphas]),
                 ("first run: starter retrain (s)", [first[a]["retrain_s"] for a in alphas]),
                 ("first run: peak RSS (MiB)", [first[a]["peak_rss_mib"] for a in alphas])]
    # The first alpha loaded also pays TensorFlow's one-off start (the converter's).
    rows.append(("backbone load+convert, in turn (s)",
                 [result["backbone_load_s"][a] for a in alphas]))
    for kind in ("sketch", "webcam"):
        for stat in ("wall_p50", "wall_p95", "cpu_p50", "cpu_p95"):
            rows.append((f"per frame, {kind}: {stat.replace('_', ' ')} (ms)",
                         [result["per_frame_ms"][a][kind][stat] for a in alphas]))
    cold = result["cold_retrain"]
    rows += [("cold retrain (s)", [cold[a]["seconds"] for a in alphas]),
             ("cold retrain CPU (s)", [cold[a]["cpu_s"] for a in alphas]),
             ("cold retrain features/s", [cold[a]["features_per_s"] for a in alphas]),
             ("cold retrain test accuracy", [cold[a]["test_accuracy"] for a in alphas])]
    size = result["sizes"]
    rows += [("weights file (bytes)", [size[a]["weights_bytes"] for a in alphas]),
             ("LiteRT files (bytes)", [sum(size[a]["litert_bytes"].values()) for a in alphas]),
             ("features per train image (bytes)",
              [size[a]["feature_bytes_per_train_image"] for a in alphas])]
    print(f"{'':>38} " + " ".join(f"{'alpha ' + a:>12}" for a in alphas) + f" {'ratio':>7}")
    for name, values in rows:
        ratio = values[-1] / values[0] if values[0] else float("nan")
        print(f"{name:>38} " + " ".join(f"{v:>12}" for v in values) + f" {ratio:>7.2f}")
    webcam = result["per_frame_ms"][alphas[-1]]["webcam"]["wall_p95"]
    print(f"{'':>38} alpha {alphas[-1]} webcam p95 is "
          f"{webcam / (10 * result['stream_every_s']):.1f}% of the "
          f"{result['stream_every_s']} s stream interval; preprocessing a webcam frame: "
          f"p50 {result['preprocess_webcam_ms']['wall_p50']} ms (any alpha)")
    if result["per_class"] != TRAIN_PER_CLASS:
        print(f"{'':>38} cold retrain on {result['per_class']} train + test drawings a class "
              f"(fewer than the dev split's {TRAIN_PER_CLASS})")
    print(f"{'':>38} load average {statistics.fmean(result['load_average']):.2f} "
          f"on {result['machine']['cpus']} cores; {result['seconds']} s in all")


if __name__ == "__main__":
    main()
