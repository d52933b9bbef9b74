"""python -m bench.labeler_grid: how fast the labeler's grid opens and how fast
it batch-labels 500 images on a database of 20,000 images.

Seeds a fresh SQLite file with generated sketches (model.sketches, drawn on a
small canvas), half of them labeled, 1 in 5 in the test split. For the
model-driven sorts it stores one prediction per image from a stand-in model
version whose probabilities are random: the figures time the SQL and the
page, not a model. The app is served by uvicorn on real HTTP and timed with
httpx; each figure is the median of REPEATS requests. Prints the figures and
one JSON object as its last line.
"""
import argparse
import json
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench.common import ALPHA, INPUT_SIZE, free_port
from model.classifier import ranked

IMAGES = 20_000
BATCH_LABEL = 500
REPEATS = 5
CANVAS = 64
INSERT_BATCH = 1000


def seed(store, count, rng):
    from model.images import stored_form
    from model.sketches import SHAPES, draw
    started = time.perf_counter()
    for start in range(0, count, INSERT_BATCH):
        items = []
        for index in range(start, min(count, start + INSERT_BATCH)):
            shape = SHAPES[index % len(SHAPES)]
            data, width, height = stored_form(draw(shape, rng, size=CANVAS))
            item = {"data": data, "width": width, "height": height, "source": "generated",
                    "split": "test" if index % 5 == 0 else "train"}
            if index % 2 == 0:
                item["label"] = shape
            items.append(item)
        store.add_images(items)
    return time.perf_counter() - started


def fake_predictions(store, rng):
    """A stand-in live version and random probabilities for every image."""
    from db import labeling
    from model.head import head_to_bytes, init_params
    from model.sketches import SHAPES
    classes = list(SHAPES)
    head = head_to_bytes(init_params([256, 4], rng))
    version = store.add_model_version("stand-in", classes,
                                      {"alpha": ALPHA, "input_size": INPUT_SIZE},
                                      {"accuracy": None}, head, live=True)
    ids = labeling.live_image_ids(store)
    p = rng.dirichlet(np.ones(len(classes)), size=len(ids))
    rows = [(image_id, ranked(probabilities, classes)) for image_id, probabilities in zip(ids, p)]
    labeling.put_predictions(store, version, rows)
    return version


def serve(app):
    import uvicorn
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}"


def timed(fn, repeats=REPEATS):
    times = []
    result = None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.labeler_grid", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=IMAGES)
    parser.add_argument("--db", default=None, help="reuse (or create) this SQLite file")
    args = parser.parse_args(argv)
    import httpx
    from db import Store, labeling
    from labeler.app import create_app
    from labeler.settings import settings

    path = Path(args.db) if args.db else Path(tempfile.mkdtemp(prefix="labeler-bench-")) / "b.db"
    store = Store(path)
    rng = np.random.default_rng(0)
    seed_seconds = 0.0
    if store.count_images() < args.images:
        seed_seconds = seed(store, args.images - store.count_images(), rng)
    if store.live_version_id() is None:
        fake_predictions(store, rng)
    total = store.count_images()
    print(f"database: {total} images ({path}); seeding took {seed_seconds:.1f} s")

    server, url = serve(create_app(path))
    figures = {"images": total, "seed_seconds": round(seed_seconds, 1)}
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            first = client.get("/images")
            assert first.status_code == 200
            csrf = re.search(r'name="csrf" value="([^"]+)"', first.text).group(1)
            pages = -(-total // settings.page_size)
            circle = next(c["id"] for c in labeling.class_summary(store) if c["name"] == "circle")
            urls = {
                "grid_first_page": "/images",
                "grid_middle_page": f"/images?page={pages // 2}",
                "grid_last_page": f"/images?page={pages}",
                "grid_filtered_class_split": f"/images?label={circle}&split=train",
                "grid_unlabeled": "/images?status=unlabeled",
                "grid_predicted_class": "/images?predicted=star",
                "grid_least_confident": "/images?sort=least-confident",
                "grid_top_losses": "/images?sort=top-losses",
                "grid_misclassified": "/images?status=misclassified",
            }
            for name, target in urls.items():
                seconds, response = timed(lambda: client.get(target))
                assert response.status_code == 200, (target, response.text[:500])
                figures[name + "_ms"] = round(seconds * 1000, 1)
            # Thumbnails of one page: made on the first view, then from the cache.
            ids = [int(i) for i in re.findall(r'data-id="(\d+)"',
                                               client.get(f"/images?page={pages // 3}").text)]
            started = time.perf_counter()
            for image_id in ids:
                assert client.get(f"/images/{image_id}/thumb.png").status_code == 200
            figures["thumbs_page_cold_ms"] = round((time.perf_counter() - started) * 1000, 1)
            started = time.perf_counter()
            for image_id in ids:
                client.get(f"/images/{image_id}/thumb.png")
            figures["thumbs_page_warm_ms"] = round((time.perf_counter() - started) * 1000, 1)

            # Batch-label 500 selected images (the ids a select-all over pages would send).
            chosen = [int(i) for i in rng.choice(labeling.live_image_ids(store), BATCH_LABEL,
                                                 replace=False)]

            def label(name):
                response = client.post("/images/batch", data={
                    "csrf": csrf, "ids": chosen, "action": "label", "new_label": name,
                    "next": "/images"}, follow_redirects=False)
                assert response.status_code == 303, response.text[:500]
                return response
            names = iter(f"batch-{i}" for i in range(REPEATS))
            seconds, _ = timed(lambda: label(next(names)))
            figures["batch_label_500_ms"] = round(seconds * 1000, 1)
            figures["batch_label_500_then_grid_ms"] = round(timed(
                lambda: (label("batch-final"), client.get("/images")))[0] * 1000, 1)
            check = next(c["images"] for c in labeling.class_summary(store)
                         if c["name"] == "batch-final")
            assert check == BATCH_LABEL, check
            seconds, _ = timed(lambda: client.post("/images/batch", data={
                "csrf": csrf, "ids": chosen, "action": "split", "split": "test"},
                follow_redirects=False), repeats=3)
            figures["batch_split_500_ms"] = round(seconds * 1000, 1)
    finally:
        server.should_exit = True

    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
