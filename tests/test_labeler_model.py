"""The labeler's model flows over HTTP with JavaScript off, with real
TensorFlow (the genuine MobileNet v1 alpha 0.25 weights) and a real SQLite
file: background retrain with progress, metrics pictures, confusion-matrix
drill-down, model-driven sorting, rollback and the model exports."""
import io
import itertools
import json
import re
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
from PIL import Image, ImageDraw

from db import Store, labeling
from tests.helpers.common import copy_db
from tests.helpers.labeler import (client_for, post, seeded, tile_ids, trained_template,
                                   wait_for_job)


@pytest.fixture
def trained(backbone, tmp_path):
    path = copy_db(trained_template(), tmp_path / "trained.db")
    store = Store(path)
    yield path, store
    store.close()


def test_retrain_runs_in_the_background_with_progress_then_shows_the_version(backbone, tmp_path):
    path = tmp_path / "fresh.db"
    store = Store(path)
    seeded(store)
    client = client_for(path)
    response = post(client, "/retrain", {}, follow=False)
    assert response.status_code == 303 and response.headers["location"] == "/retrain"
    page = client.get("/retrain").text
    # Without JavaScript the page refreshes itself while the job runs.
    if 'data-state="running"' in page:
        assert '<meta http-equiv="refresh" content="2">' in page
    final, seen = wait_for_job(client)
    assert final["state"] == "done", final
    assert {stage for _, stage, _, _ in seen} & {"features", "training", "predictions", "starting"}
    page = client.get("/retrain").text
    assert re.search(r'Version <a href="/versions/1">v1</a>: test accuracy [\d.]+% on 8 test',
                     page)
    assert "It is live now." in page
    assert '<meta http-equiv="refresh"' not in page
    versions = client.get("/versions").text
    assert re.search(r'v1</a> <strong class="live-mark">live</strong>', versions)
    # The live version scored every image for the grid's model sorts.
    assert labeling.unpredicted_image_ids(store, 1) == []
    store.close()


def test_a_second_retrain_while_one_runs_is_not_started(backbone, tmp_path):
    path = tmp_path / "fresh.db"
    seeded(Store(path))
    client = client_for(path)
    post(client, "/retrain", {})
    response = post(client, "/retrain", {})
    if client.get("/retrain/status").json()["state"] == "running":
        assert "already running" in response.text
    wait_for_job(client)
    assert len(Store(path).model_versions()) == 1


def test_retrain_without_enough_labels_shows_why_on_the_page(backbone, tmp_path):
    path = tmp_path / "few.db"
    from tests.helpers.common import add_sketches
    add_sketches(Store(path), 1, seed=3)
    client = client_for(path)
    post(client, "/retrain", {})
    final, _ = wait_for_job(client)
    assert final["state"] == "failed"
    page = client.get("/retrain").text
    assert 'id="job-error">Training needs at least 2 classes' in page


def test_version_page_shows_per_class_accuracy_confusion_matrix_and_curves(trained):
    path, store = trained
    client = client_for(path)
    version = store.model_version()
    page = client.get(f"/versions/{version['id']}").text
    for name in version["classes"]:
        assert f"<td>{name}</td>" in page
    counts = version["metrics"]["eval_counts"]
    assert re.findall(r'<td class="count">(\d+)</td>', page) == [
        str(counts[name]) for name in version["metrics"]["per_class"]]
    calibration = version["metrics"]["calibration"]
    assert re.search(r'<p id="calibration">Calibration error [\d.]+% \(before calibration '
                     r'[\d.]+%\)', page)
    assert ("rescaled by a temperature" in page) == calibration["fitted"]
    assert "I don&#39;t know" in page or "I don't know" in page
    ece = re.search(r'<td class="ece">([^<]+)</td>', client.get("/versions").text).group(1)
    assert ece == f"{100 * calibration['ece']:.1f}%"
    n = len(version["metrics"]["confusion"]["labels"])
    assert page.count("<area ") == n * n
    for picture in ("confusion.png", "curves.png"):
        response = client.get(f"/versions/{version['id']}/{picture}")
        assert response.headers["content-type"] == "image/png"
        image = Image.open(io.BytesIO(response.content))
        assert image.size[0] > 200 and image.size[1] > 200
    # Every map area lies inside the picture.
    width, height = Image.open(io.BytesIO(
        client.get(f"/versions/{version['id']}/confusion.png").content)).size
    for coords in re.findall(r'<area shape="rect" coords="([\d,]+)"', page):
        x0, y0, x1, y1 = map(int, coords.split(","))
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height


def test_a_version_page_and_its_confusion_picture_draw_the_matrix_once(trained, monkeypatch):
    from labeler.settings import settings
    from model import plots
    path, store = trained
    client = client_for(path)
    drawn, draw = [], plots.confusion_png
    monkeypatch.setattr(plots, "confusion_png", lambda *a: drawn.append(a) or draw(*a))
    version = store.live_version_id()
    assert client.get(f"/versions/{version}").status_code == 200
    picture = client.get(f"/versions/{version}/confusion.png")
    assert picture.content.startswith(b"\x89PNG") and len(drawn) == 1
    assert client.app.state.confusion.size == settings.confusion_cache


def test_clicking_a_confusion_cell_lists_exactly_its_images(trained):
    path, store = trained
    client = client_for(path)
    version = store.model_version()
    confusion = version["metrics"]["confusion"]
    page = client.get(f"/versions/{version['id']}").text
    areas = re.findall(r'<area shape="rect" coords="[\d,]+" href="([^"]+)"', page)
    checked = 0
    for r, truth in enumerate(confusion["labels"]):
        for c, guess in enumerate(confusion["labels"]):
            href = next(a for a in areas if f"truth={truth}&amp;predicted={guess}" in a)
            listed = tile_ids(client.get(href.replace("&amp;", "&")).text)
            assert len(listed) == confusion["matrix"][r][c], (truth, guess)
            tests = {i for i, name in store.labeled_images("test") if name == truth}
            assert set(listed) <= tests
            checked += len(listed)
    assert checked == version["metrics"]["eval_images"]


def _grid_facts(store, version):
    """Every image as a direct reading of the tables gives it (the grid's oracle)."""
    facts = {}
    for image_id, deleted, source, split, class_id, label in store.db.execute(
            "SELECT i.id, i.deleted_at IS NOT NULL, i.source, i.split, l.class_id, c.name"
            " FROM images i LEFT JOIN labels l ON l.image_id = i.id"
            " LEFT JOIN classes c ON c.id = l.class_id"):
        facts[image_id] = {"deleted": bool(deleted), "source": source, "split": split,
                           "class_id": class_id, "label": label, "predicted": None, "top": None,
                           "unknown": None}
    for image_id, predicted, top, unknown in store.db.execute(
            "SELECT image_id, label, top, unknown FROM predictions WHERE model_version = ?"
            " ORDER BY id", [version]):
        facts[image_id].update(predicted=predicted, top=json.loads(top), unknown=unknown)
    return facts


def _grid_expected(facts, filters, sort):
    status = filters.get("status", "all")

    def listed(f):
        checks = [f["deleted"] == (status == "deleted")]
        checks.append({"labeled": f["label"] is not None, "unlabeled": f["label"] is None,
                       "misclassified": f["label"] is not None and f["predicted"] is not None
                       and f["predicted"] != f["label"], "unknown": f["unknown"] == 1,
                       }.get(status, True))
        label = filters.get("label")
        checks.append(label is None or (f["label"] is None if label == labeling.UNLABELED
                                        else f["class_id"] == label))
        checks.append(filters.get("predicted") in (None, f["predicted"]))
        checks.append(filters.get("split") in (None, f["split"]))
        if sort == "top-losses":
            checks.append(f["label"] is not None and f["predicted"] is not None)
        return all(checks)
    return {image_id for image_id, f in facts.items() if listed(f)}


def test_the_grid_agrees_with_a_direct_reading_of_the_data_for_every_filter_and_sort(trained):
    path, store = trained
    version = store.live_version_id()
    ids = sorted(_grid_facts(store, version))
    store.remove_labels(ids[:3])
    labeling.delete_images(store, ids[3:6])
    circle = next(c["id"] for c in labeling.class_summary(store) if c["name"] == "circle")
    labeling.label_images(store, ids[6:9], "circle", "test")  # some become misclassified
    facts = _grid_facts(store, version)
    nonempty = 0
    for status, sort, label, predicted, split in itertools.product(
            labeling.GRID_STATUSES, labeling.GRID_SORTS, (None, circle, labeling.UNLABELED),
            (None, "square"), (None, "test")):
        filters = {k: v for k, v in {"status": status, "label": label, "predicted": predicted,
                                     "split": split}.items() if v is not None}
        rows, total = labeling.grid(store, filters, sort, 0, len(facts), version)
        listed = [r["id"] for r in rows]
        expected = _grid_expected(facts, filters, sort)
        assert set(listed) == expected and total == len(expected), (filters, sort)
        nonempty += bool(expected)
        if sort in ("newest", "oldest"):
            assert listed == sorted(listed, reverse=sort == "newest")
        elif sort == "least-confident":
            ranks = [(r["confidence"] is None, r["confidence"] or 0) for r in rows]
            assert ranks == sorted(ranks)
        else:
            losses = [r["true_probability"] for r in rows]
            assert losses == sorted(losses)
        if total > 2:
            page, _ = labeling.grid(store, filters, sort, 1, 2, version)
            assert [r["id"] for r in page] == listed[1:3]
    assert nonempty >= 80  # not a vacuous comparison of empty pages


def test_least_confident_sort_puts_the_most_uncertain_images_first(trained):
    path, store = trained
    client = client_for(path)
    ids = tile_ids(client.get("/images?sort=least-confident&per_page=200").text)
    live = store.live_version_id()
    confidence = dict(store.db.execute(
        "SELECT image_id, confidence FROM predictions WHERE model_version = ?", [live]).fetchall())
    assert len(ids) == len(confidence) == store.count_images()
    values = [confidence[i] for i in ids]
    assert values == sorted(values)


def test_top_losses_lists_a_mislabeled_image_first(trained):
    path, store = trained
    client = client_for(path)
    live = store.live_version_id()
    sure = store.db.execute(
        "SELECT image_id, label FROM predictions WHERE model_version = ? AND label = 'star'"
        " ORDER BY confidence DESC LIMIT 1", [live]).fetchone()
    post(client, "/images/batch", {"ids": [sure[0]], "action": "label", "label": "circle"})
    ids = tile_ids(client.get("/images?sort=top-losses").text)
    assert ids[0] == sure[0]
    page = client.get("/images?status=misclassified&per_page=200").text
    assert sure[0] in tile_ids(page)


def test_grid_filters_by_predicted_class(trained):
    path, store = trained
    client = client_for(path)
    live = store.live_version_id()
    expected = {r[0] for r in store.db.execute(
        "SELECT image_id FROM predictions WHERE model_version = ? AND label = 'square'", [live])}
    assert set(tile_ids(client.get("/images?predicted=square&per_page=200").text)) == expected


def test_images_unlike_every_class_are_stored_as_unknown_and_listed_by_their_filter(trained):
    from model.images import stored_form
    from service.jobs import refresh_predictions
    path, store = trained
    # A page of handwriting-like lines: none of the shapes.
    noise = Image.new("RGB", (200, 200), "white")
    pen = ImageDraw.Draw(noise)
    for y in range(20, 190, 18):
        pen.line([(x, y + 4 * np.sin(x / 5 + y)) for x in range(15, 185, 3)], fill="black",
                 width=2)
    data, width, height = stored_form(noise)
    [(noise_id, _)] = store.add_images([{"data": data, "width": width, "height": height,
                                         "source": "upload", "split": "train"}])
    assert refresh_predictions(store) == 1
    live = store.live_version_id()
    judged = dict(store.db.execute(
        "SELECT image_id, unknown FROM predictions WHERE model_version = ?", [live]).fetchall())
    # Every image is judged; the training drawings are known, the noise is not.
    assert judged[noise_id] == 1 and sum(judged.values()) == 1
    client = client_for(path)
    assert tile_ids(client.get("/images?status=unknown").text) == [noise_id]
    grid = client.get("/images?per_page=200").text
    assert grid.count('class="unknown"') == 1
    assert 'id="image-unknown"' in client.get(f"/images/{noise_id}").text


def test_a_version_made_live_by_another_process_is_scored_in_the_background(
        trained, monkeypatch):
    import time
    import httpx
    from labeler.app import create_app
    from labeler.settings import settings
    from tests.helpers.common import run_cli
    from tests.helpers.labeler import served
    path, store = trained
    monkeypatch.setattr(settings, "watch_live_every", 0.2)
    with served(create_app(path)) as url:
        # A retrain in its own process, as `python -m model.train` is run.
        made = json.loads(run_cli("-m", "model.train", "--db", str(path), "--seed", "7",
                                  "--force").stdout.splitlines()[-1])
        assert made["live"]
        deadline = time.monotonic() + 300  # only there so that a failure does not hang
        while labeling.unpredicted_image_ids(store, made["version"]):
            assert time.monotonic() < deadline, "the new version's predictions never came"
            time.sleep(0.2)
        grid = httpx.get(f"{url}/images?predicted=square&per_page=200").text
    expected = {r[0] for r in store.db.execute(
        "SELECT image_id FROM predictions WHERE model_version = ? AND label = 'square'",
        [made["version"]])}
    assert expected and set(tile_ids(grid)) == expected


def test_renaming_a_class_keeps_its_images_correctly_predicted_and_serving_follows(trained):
    from model.classifier import Classifier
    from tests.helpers.demo import draw_shape
    path, store = trained
    client = client_for(path)
    serving = Classifier(store)
    assert serving.classify(draw_shape("star", seed=5))["label"] == "star"
    misclassified = set(tile_ids(client.get("/images?status=misclassified&per_page=200").text))
    star = next(c["id"] for c in labeling.class_summary(store) if c["name"] == "star")
    post(client, f"/classes/{star}/rename", {"name": "pentagram"})
    after = set(tile_ids(client.get("/images?status=misclassified&per_page=200").text))
    assert after == misclassified
    live = store.model_version()
    assert "pentagram" in live["classes"] and "star" not in live["classes"]
    assert "pentagram" in live["metrics"]["per_class"]
    assert "pentagram" in live["metrics"]["confusion"]["labels"]
    cell = client.get(f"/versions/{live['id']}/cell?truth=pentagram&predicted=pentagram").text
    assert tile_ids(cell)
    names = {name for (top,) in store.db.execute("SELECT top FROM predictions")
             for name, _ in json.loads(top)}
    assert "pentagram" in names and "star" not in names
    assert set(tile_ids(client.get("/images?predicted=pentagram&per_page=200").text))
    result = serving.classify(draw_shape("star", seed=5))
    assert result["label"] == "pentagram" and result["version"] == live["id"]


def test_a_rename_onto_a_name_an_old_version_still_knows_is_refused_and_changes_nothing(
        trained):
    path, store = trained
    client = client_for(path)
    ids = {c["name"]: c["id"] for c in labeling.class_summary(store)}
    post(client, f"/classes/{ids['star']}/merge", {"into": str(ids["circle"])})
    before = store.model_version()
    response = post(client, f"/classes/{ids['square']}/rename", {"name": "star"})
    assert response.status_code == 409 and "pick another name" in response.text
    assert labeling.get_class(store, ids["square"])["name"] == "square"
    assert store.model_version() == before


def test_classes_are_not_renamed_or_merged_while_a_model_job_writes_predictions(trained):
    import threading
    path, store = trained
    client = client_for(path)
    ids = {c["name"]: c["id"] for c in labeling.class_summary(store)}
    release = threading.Event()
    jobs = client.app.state.jobs
    assert jobs.start("held", lambda report: release.wait(60))
    try:
        for url, data in ((f"/classes/{ids['star']}/rename", {"name": "pentagram"}),
                          (f"/classes/{ids['star']}/merge", {"into": str(ids["circle"])})):
            response = post(client, url, data)
            assert response.status_code == 409 and "once it has finished" in response.text
        assert {c["name"] for c in labeling.class_summary(store)} == set(ids)
    finally:
        release.set()
        jobs.wait()
    post(client, f"/classes/{ids['star']}/rename", {"name": "pentagram"})
    assert labeling.get_class(store, ids["star"])["name"] == "pentagram"


def test_rollback_makes_an_older_version_live_again(trained):
    path, store = trained
    client = client_for(path)
    post(client, "/retrain", {"force": "1"})
    final, _ = wait_for_job(client)
    assert final["state"] == "done" and final["result"]["live"]
    assert store.live_version_id() == 2
    # An older version's confusion cell shows that version's predictions, not the live one's.
    confusion = store.model_version(1)["metrics"]["confusion"]
    labels, matrix = confusion["labels"], confusion["matrix"]
    r, c = max(((r, c) for r in range(len(labels)) for c in range(len(labels))),
               key=lambda rc: (rc[0] != rc[1] and matrix[rc[0]][rc[1]] > 0, matrix[rc[0]][rc[1]]))
    cell = client.get(f"/versions/1/cell?truth={labels[r]}&predicted={labels[c]}").text
    shown = re.findall(r'<span class="pred[^"]*" title="([^"]+)">model: (\S+) ', cell)
    assert len(shown) == matrix[r][c] > 0
    assert set(shown) == {("v1", labels[c])}
    response = post(client, "/versions/1/live", {})
    assert "Version 1 is live now." in response.text
    assert store.live_version_id() == 1
    wait_for_job(client)
    assert re.search(r'v1</a> <strong class="live-mark">live</strong>',
                     client.get("/versions").text)
    assert post(client, "/versions/99/live", {}).status_code == 404


def test_exported_keras_and_tflite_models_load_on_their_own_and_predict_like_the_live_model(
        trained, tmp_path):
    from model.classifier import Classifier
    from model.images import preprocess
    from model.sketches import draw
    path, store = trained
    client = client_for(path)
    keras_file, tflite_file = tmp_path / "model.keras", tmp_path / "model.tflite"
    keras_file.write_bytes(client.get("/export/model.keras").content)
    tflite_file.write_bytes(client.get("/export/model.tflite").content)
    labels = client.get("/export/labels.txt").text.splitlines()
    version = store.model_version()
    assert labels == version["classes"]
    images = np.stack([preprocess(draw(shape, np.random.default_rng(90 + i)), 224)
                       for i, shape in enumerate(labels)]).astype(np.float32)
    np.save(tmp_path / "images.npy", images)
    expected = Classifier(store).probabilities(images)[1]
    # A fresh interpreter outside the project: only Keras, LiteRT and the files.
    script = textwrap.dedent(f"""
        import json, numpy as np, keras
        from ai_edge_litert.interpreter import Interpreter
        images = np.load({str(tmp_path / 'images.npy')!r})
        k = keras.models.load_model({str(keras_file)!r}).predict(images, verbose=0)
        it = Interpreter(model_path={str(tflite_file)!r})
        it.allocate_tensors()
        out = []
        for image in images:
            it.set_tensor(it.get_input_details()[0]["index"], image[None])
            it.invoke()
            out.append(it.get_tensor(it.get_output_details()[0]["index"])[0].tolist())
        print(json.dumps({{"keras": k.tolist(), "tflite": out}}))
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300, env={"KERAS_HOME": str(tmp_path),
                                                         "TF_CPP_MIN_LOG_LEVEL": "3",
                                                         "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    outputs = json.loads(result.stdout.strip().splitlines()[-1])
    for name in ("keras", "tflite"):
        got = np.asarray(outputs[name])
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() < 2e-2, name
        assert (got.argmax(axis=1) == expected.argmax(axis=1)).all(), name


def test_dataset_export_of_a_trained_database_matches_its_labels(trained):
    path, store = trained
    client = client_for(path)
    archive = zipfile.ZipFile(io.BytesIO(client.get("/export/dataset.zip").content))
    rows = {}
    for line in archive.read("labels.csv").decode().splitlines()[1:]:
        entry, name, split = line.split(",")
        rows[int(entry.rsplit("/", 1)[1][:-4])] = (name, split)
    expected = {i: (name, split) for split in ("train", "test")
                for i, name in store.labeled_images(split)}
    assert rows == expected


# A labeler in a process of its own, so that TensorFlow is still to be imported
# when the requests come: the Retrain options of the other tests.
SERVE_SCRIPT = """
import sys, uvicorn
from labeler.app import create_app
from tests.helpers.labeler import TRAIN_OPTIONS
app = create_app(sys.argv[1], train_options=TRAIN_OPTIONS)
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""
CONCURRENT_REQUESTS = 20


def test_twenty_exports_and_uploads_at_once_on_a_fresh_labeler_all_succeed_then_retrain_works(
        trained, tmp_path):
    # The reproduction: on a fresh labeler with a live model, an upload
    # (scoring in the job thread) and a model export (a request thread) at once
    # imported TensorFlow in two threads: a 500 (_DeadlockError), then every
    # export and Retrain failed until a restart. Without model.backbone's
    # import lock this test fails so (2 runs of 2).
    import threading
    import time
    import httpx
    from bench.common import free_port
    from tests.helpers.common import ROOT
    from tests.helpers.labeler import png_bytes
    path, store = trained
    port = free_port()
    log = tmp_path / "labeler.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-c", SERVE_SCRIPT, str(path), str(port)],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # only there so that a failure does not hang
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            try:
                page = httpx.get(f"{url}/capture")
                break
            except httpx.ConnectError:
                time.sleep(0.2)
        cookies = dict(page.cookies)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        kinds = list(itertools.islice(itertools.cycle(["upload", "keras", "tflite"]),
                                      CONCURRENT_REQUESTS))
        answers = [None] * len(kinds)
        # As in the issue, the exports follow an upload at once: its answer
        # means its scoring job has started loading TensorFlow.
        start, uploaded = threading.Barrier(len(kinds)), threading.Event()

        def ask(n, kind):
            with httpx.Client(base_url=url, cookies=cookies, timeout=600) as client:
                start.wait()
                if kind == "upload":
                    try:
                        response = client.post(
                            "/upload", data={"csrf": csrf, "new_label": "circle"},
                            files={"files": (f"{n}.png", png_bytes("circle", 700 + n))})
                    finally:
                        uploaded.set()
                else:
                    uploaded.wait()
                    response = client.get(f"/export/model.{kind}")
                answers[n] = (kind, response.status_code, response.text[:300]
                              if response.status_code >= 400 else len(response.content))
        threads = [threading.Thread(target=ask, args=(n, kind)) for n, kind in enumerate(kinds)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(answer and answer[1] < 400 for answer in answers), answers
        assert len({size for kind, _, size in answers if kind == "tflite"}) == 1
        assert store.db.execute("SELECT COUNT(*) FROM images WHERE source = 'upload'"
                                ).fetchone()[0] == kinds.count("upload")
        # TensorFlow still works: a retrain (after the scoring the uploads started).
        with httpx.Client(base_url=url, cookies=cookies, timeout=60) as client:
            assert wait_for_job(client)[0]["state"] == "done"
            assert client.post("/retrain", data={"csrf": csrf, "force": "1"}).status_code == 303
            final, _ = wait_for_job(client)
            assert final["state"] == "done", final
            assert len(store.model_versions()) == 2
    finally:
        proc.terminate()
        proc.wait(20)
