"""python -m bench.features: feature extraction speed by engine and batch size.

Decodes and preprocesses the Quick, Draw! dev drawings as a retrain does, then
times the frozen alpha 0.25 backbone alone on them: the LiteRT interpreter the
project uses and the compiled TensorFlow call, at batch sizes 1, 32 and 128,
and the interpreter with 1 and 2 threads.
(bench.foundation times the whole pipeline: decode, preprocess, augment,
features, storage.) Prints a table and, as its last line, one JSON object."""
import argparse
import json
import time

import numpy as np

from bench.common import ALPHA, machine, quickdraw, setup

BATCH_SIZES = (1, 32, 128)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.features", description=__doc__)
    parser.add_argument("--images", type=int, default=1024, help="images per measurement")
    args = parser.parse_args(argv)
    setup()
    from PIL import Image
    from model.backbone import FeatureExtractor, compiled
    from model.images import preprocess
    rows = quickdraw()[:args.images]
    started = time.perf_counter()
    arrays = np.stack([preprocess(Image.fromarray(pixels), 224) for _, _, pixels in rows])
    preprocess_per_s = len(arrays) / (time.perf_counter() - started)
    result = {"images": len(arrays), "alpha": ALPHA, "preprocess_per_s": round(preprocess_per_s),
              "images_per_s": {}, "tensorflow_images_per_s": {}}
    tensorflow = compiled(ALPHA, 224)
    for batch in BATCH_SIZES:
        litert = FeatureExtractor(ALPHA, 224, batch_size=batch)
        litert(arrays[:batch])
        result["images_per_s"][batch] = round(_rate(litert, arrays))
        run = lambda a, b=batch: [tensorflow(a[i:i + b].astype(np.float32)) for i in range(0, len(a), b)]
        run(arrays[:batch])
        result["tensorflow_images_per_s"][batch] = round(_rate(run, arrays[:256]))
        print(f"batch {batch:>4}: litert {result['images_per_s'][batch]:>6} img/s   "
              f"tensorflow {result['tensorflow_images_per_s'][batch]:>6} img/s", flush=True)
    result["litert_threads"] = {}
    for threads in (1, 2):
        litert = FeatureExtractor(ALPHA, 224, threads=threads)
        litert(arrays[:1])
        result["litert_threads"][threads] = round(_rate(litert, arrays))
        print(f"litert, {threads} thread(s), batch 1: {result['litert_threads'][threads]} img/s",
              flush=True)
    result["engine"] = litert.engine
    result["machine"] = machine()
    print(json.dumps(result))


def _rate(run, arrays):
    started = time.perf_counter()
    run(arrays)
    return len(arrays) / (time.perf_counter() - started)


if __name__ == "__main__":
    main()
