"""python -m bench.features: feature extraction speed by engine and batch size.

Decodes and preprocesses the Quick, Draw! dev drawings as a retrain does, then
times the frozen alpha 0.25 backbone alone on them, at batch sizes 1, 32, 128:
- `images_per_s`: bulk extraction as retrains and imports run it, one worker
  process per core, each with single-threaded LiteRT interpreters;
- `in_process_images_per_s`: the serving extractor, 2-thread interpreters;
- `tensorflow_images_per_s`: the compiled TensorFlow call.
Drawings are grey, so they run through the one-channel network; the same
drawings tinted (colour, as webcam photos are) time the three-channel one
(`colour_images_per_s`).
Then the whole pipeline (`pipeline_features_per_s`: PNG decode, preprocess,
augmented views, network, float16 storage in SQLite) through
`model.features.ensure_features`, for 1 and 3 views per image.
Prints a table and, as its last line, one JSON object."""
import argparse
import json
import multiprocessing
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import ALPHA, INPUT_SIZE, fill_store, machine, quickdraw, setup

BATCH_SIZES = (1, 32, 128)
WORKER_IMAGES = 128  # arrays sent to each worker, run over and over for `seconds`
# The pipeline measurement starts the worker pool on its first images, untimed
# (at least model.features.POOL_MIN_FEATURES), then times the rest (as many again).
PIPELINE_WARMUP = 300
MIN_IMAGES = 600


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.features", description=__doc__)
    parser.add_argument("--images", type=int, default=1024, help="images per measurement")
    parser.add_argument("--seconds", type=float, default=4.0,
                        help="seconds per LiteRT measurement")
    args = parser.parse_args(argv)
    if args.images < MIN_IMAGES or args.seconds <= 0:
        parser.error(f"--images takes at least {MIN_IMAGES} (the pipeline measurement warms "
                     f"up on {PIPELINE_WARMUP}); --seconds must be positive")
    setup()
    from PIL import Image
    from model.backbone import FeatureExtractor, compiled
    from model.features import FEATURE_WORKERS
    from model.images import preprocess
    rows = quickdraw()[:args.images]
    started = time.perf_counter()
    # As bulk extraction prepares them: grey drawings keep one channel.
    arrays = np.stack([preprocess(Image.fromarray(pixels), INPUT_SIZE, keep_grey=True)
                       for _, _, pixels in rows])
    preprocess_per_s = len(arrays) / (time.perf_counter() - started)
    result = {"images": len(arrays), "alpha": ALPHA, "workers": FEATURE_WORKERS,
              "preprocess_per_s": round(preprocess_per_s), "images_per_s": {},
              "in_process_images_per_s": {}, "tensorflow_images_per_s": {}}
    tensorflow = compiled(ALPHA, INPUT_SIZE)
    wide = np.repeat(arrays[:256], 3, axis=-1)  # the Keras network takes three channels
    model_files = FeatureExtractor(ALPHA, INPUT_SIZE).model_files
    pool = multiprocessing.get_context("spawn").Pool(FEATURE_WORKERS)
    for batch in BATCH_SIZES:
        result["images_per_s"][batch] = round(_pool_rate(pool, model_files, arrays, batch,
                                                         args.seconds))
        litert = FeatureExtractor(ALPHA, INPUT_SIZE, batch_size=batch)
        result["in_process_images_per_s"][batch] = round(_rate(litert, arrays, args.seconds))
        run = lambda a, b=batch: [tensorflow(a[i:i + b].astype(np.float32)) for i in range(0, len(a), b)]
        result["tensorflow_images_per_s"][batch] = round(_rate(run, wide))
        print(f"batch {batch:>4}: {FEATURE_WORKERS} workers {result['images_per_s'][batch]:>6} img/s"
              f"   in process {result['in_process_images_per_s'][batch]:>6} img/s"
              f"   tensorflow {result['tensorflow_images_per_s'][batch]:>6} img/s", flush=True)
    pool.close()
    result["in_process_threads"] = {}
    for threads in (1, 2):
        litert = FeatureExtractor(ALPHA, INPUT_SIZE, threads=threads)
        result["in_process_threads"][threads] = round(_rate(litert, arrays, args.seconds))
        print(f"in process, {threads} thread(s), batch 1: "
              f"{result['in_process_threads'][threads]} img/s", flush=True)
    tinted = np.repeat(arrays, 3, axis=-1)
    tinted[..., 2] //= 2  # a yellowish paper: no longer grey
    result["colour_images_per_s"] = {
        threads: round(_rate(FeatureExtractor(ALPHA, INPUT_SIZE, threads=threads), tinted,
                             args.seconds))
        for threads in (1, 2)}
    print(f"in process, colour images, batch 1, by threads: {result['colour_images_per_s']}",
          flush=True)
    result["pipeline_features_per_s"] = {views: round(_pipeline_rate(rows, views))
                                         for views in (1, 3)}
    print(f"whole pipeline, features/s by views: {result['pipeline_features_per_s']}")
    result["engine"] = litert.engine
    result["machine"] = machine()
    print(json.dumps(result))


def _rate(run, arrays, seconds=0.0):
    """Images/s of `run` over `arrays`, repeated until `seconds` have passed."""
    run(arrays[:1])
    done, started = 0, time.perf_counter()
    while not done or time.perf_counter() - started < seconds:
        run(arrays)
        done += len(arrays)
    return done / (time.perf_counter() - started)


def _pool_rate(pool, model_files, arrays, batch, seconds):
    """Images/s of all workers running at once, each on its own slice."""
    from model.features import FEATURE_WORKERS
    # Each worker its own WORKER_IMAGES, wrapping round when there are fewer images.
    parts = [(model_files, arrays[np.arange(i * WORKER_IMAGES, (i + 1) * WORKER_IMAGES)
                                  % len(arrays)], batch, seconds)
             for i in range(FEATURE_WORKERS)]
    return sum(pool.starmap(_worker_rate, parts, chunksize=1))


def _worker_rate(model_files, arrays, batch, seconds):
    from model.backbone import LiteRTBackbone
    return _rate(LiteRTBackbone.from_files(model_files, threads=1, batch_size=batch), arrays,
                 seconds)


def _pipeline_rate(rows, views):
    """Features/s of ensure_features from stored PNGs, worker pool already started."""
    from db import Store
    from model.features import ensure_features
    store = Store(Path(tempfile.mkdtemp(prefix="sketchlab-bench-")) / "bench.db")
    ids = fill_store(store, rows)
    ensure_features(store, ALPHA, INPUT_SIZE, ids[:PIPELINE_WARMUP], 1)  # starts the pool, untimed
    started = time.perf_counter()
    computed, _ = ensure_features(store, ALPHA, INPUT_SIZE, ids[PIPELINE_WARMUP:], views)
    return computed / (time.perf_counter() - started)


if __name__ == "__main__":
    main()
