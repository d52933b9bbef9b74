"""Faults lose nothing: killed retrains, full disks, read-only files, backups under load."""
import json
import re
import sqlite3
import threading
import time

import pytest

from db import Store
from db.backup import backup
from db.errors import SketchError, StorageError
from tests.helpers.common import TEST_ALPHA, add_sketches, kill_when, kill_when_paused, run_cli
from model.images import stored_form
from model.sketches import dataset


def _items(count, seed):
    items = []
    for shape, image in dataset(count, seed=seed)[:count]:
        data, width, height = stored_form(image)
        items.append({"data": data, "width": width, "height": height, "source": "sketch",
                      "label": shape})
    return items


def test_backup_while_another_thread_writes_is_consistent(tmp_path):
    store = Store(tmp_path / "live.db")
    store.add_images(_items(20, seed=1))
    stop = threading.Event()

    def write():
        writer = Store(tmp_path / "live.db")
        seed = 100
        while not stop.is_set():
            writer.add_images(_items(4, seed=seed))
            seed += 1

    thread = threading.Thread(target=write)
    thread.start()
    try:
        for _ in range(3):
            assert backup(str(tmp_path / "live.db"), str(tmp_path / "copy.db")) == "ok"
    finally:
        stop.set()
        thread.join()
    copy = sqlite3.connect(tmp_path / "copy.db")
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert copy.execute("SELECT COUNT(*) FROM images").fetchone()[0] >= 20
    assert Store(tmp_path / "copy.db").count_images() >= 20


@pytest.mark.slow
def test_backup_closes_the_copy_so_this_process_sees_and_keeps_other_processes_writes(tmp_path):
    # Left open, the copy's connection made this process read DEST through a
    # stale wal-index: it missed the child's rows, then dropped them on close.
    Store(tmp_path / "a.db").add_images(_items(2, seed=6))
    backup(str(tmp_path / "a.db"), str(tmp_path / "b.db"))
    assert [p.name for p in tmp_path.iterdir() if ".partial" in p.name] == []
    mine = Store(tmp_path / "b.db")
    mine.add_images(_items(3, seed=7))
    run_cli("-c", "import sys; from db import Store; from tests.test_faults import _items; "
            "Store(sys.argv[1]).add_images(_items(4, seed=8))", str(tmp_path / "b.db"))
    assert mine.count_images() == 9
    mine.close()
    assert run_cli("-c", "import sys; from db import Store; "
                   "print(Store(sys.argv[1]).count_images())", str(tmp_path / "b.db")
                   ).stdout.strip() == "9"


def test_backup_refuses_a_destination_with_a_journal_that_would_rewrite_the_copy(tmp_path):
    Store(tmp_path / "a.db").add_images(_items(2, seed=6))
    other = Store(tmp_path / "b.db")
    other.add_images(_items(1, seed=9))  # b.db-wal exists while `other` is open
    with pytest.raises(SketchError, match="b.db-wal exists"):
        backup(str(tmp_path / "a.db"), str(tmp_path / "b.db"))
    assert other.count_images() == 1
    other.close()
    backup(str(tmp_path / "a.db"), str(tmp_path / "b.db"))  # journal folded in on close
    assert Store(tmp_path / "b.db").count_images() == 2


@pytest.mark.slow
def test_backup_cli_copies_and_refuses_a_missing_source(tmp_path):
    Store(tmp_path / "a.db").add_images(_items(4, seed=2))
    run_cli("-m", "db.backup", "--db", str(tmp_path / "a.db"), str(tmp_path / "b.db"))
    assert Store(tmp_path / "b.db").count_images() == 4
    missing = run_cli("-m", "db.backup", "--db", str(tmp_path / "nope.db"),
                      str(tmp_path / "c.db"), check=False)
    assert missing.returncode == 2 and "no database" in missing.stderr
    assert not (tmp_path / "c.db").exists()


def test_full_disk_is_a_clear_error_and_writes_nothing(store):
    store.add_images(_items(2, seed=3))
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    # SQLite answers "database or disk is full" once it may not grow past this.
    store.db.execute(f"PRAGMA max_page_count = {pages + 1}")
    with pytest.raises(StorageError, match="disk full"):
        store.add_images(_items(40, seed=4))
    assert store.count_images() == 2
    assert store.integrity_check() == "ok"


def test_read_only_database_is_a_clear_error(store):
    store.add_images(_items(2, seed=5))
    store.db.execute("PRAGMA query_only = ON")
    with pytest.raises(StorageError, match="read-only"):
        store.set_label([1], "circle", "test")
    store.db.execute("PRAGMA query_only = OFF")
    assert store.count_images() == 2


# A features bar past 0% means at least one batch was committed; a training
# bar means every feature was.
@pytest.mark.parametrize("phase", [r"features:\s+[1-9]\d?%", r"training:"])
def test_retrain_killed_midway_keeps_the_live_model_and_the_features(tmp_path, backbone, phase):
    path = tmp_path / "sketches.db"
    store = Store(path)
    add_sketches(store, 10, seed=1)
    add_sketches(store, 4, seed=2, split="test")
    args = ["--db", str(path), "--alpha", str(TEST_ALPHA), "--views", "2", "--epochs", "40",
            "--patience", "40"]
    run_cli("-m", "model.train", *args)
    live = store.live_version_id()
    versions = len(store.model_versions())
    add_sketches(store, 60, seed=3)
    before = store.count_features()

    output, _ = kill_when(["-m", "model.train", *args], phase)
    assert re.search(phase, output), f"never saw {phase!r}:\n{output[-3000:]}"
    check = Store(path)
    assert check.integrity_check() == "ok"
    assert check.live_version_id() == live
    assert len(check.model_versions()) == versions
    kept = check.count_features() - before
    if phase.startswith("training"):
        assert kept == 60 * 4 * 2
    else:
        assert 0 < kept < 60 * 4 * 2

    rerun = json.loads(run_cli("-m", "model.train", *args).stdout)
    assert rerun["features_computed"] == 60 * 4 * 2 - kept
    assert Store(path).integrity_check() == "ok"


@pytest.mark.parametrize("when", ["before", "after"])
def test_retrain_killed_while_saving_the_version_keeps_the_live_model(tmp_path, backbone, when):
    from tests.helpers.killable_save import PAUSED
    path = tmp_path / "sketches.db"
    store = Store(path)
    add_sketches(store, 6, seed=1)
    add_sketches(store, 3, seed=2, split="test")
    args = ["--db", str(path), "--alpha", str(TEST_ALPHA), "--views", "1", "--epochs", "5"]
    run_cli("-m", "model.train", *args)
    live, versions = store.live_version_id(), len(store.model_versions())
    output, _ = kill_when_paused(["-m", "tests.helpers.killable_save", when, *args, "--force"],
                                 PAUSED)
    assert output[-1].strip() == f"{PAUSED} ({when}), in a transaction: True", output[-20:]
    check = Store(path)
    assert check.integrity_check() == "ok"
    assert (check.live_version_id(), len(check.model_versions())) == (live, versions)
    rerun = json.loads(run_cli("-m", "model.train", *args, "--force").stdout)
    assert rerun["features_computed"] == 0 and rerun["live"]
    assert check.live_version_id() == rerun["version"] != live


def test_classifying_threads_keep_answering_while_a_retrain_switches_the_model(tmp_path, backbone):
    from model.classifier import Classifier
    from model.train import retrain
    store = Store(tmp_path / "sketches.db")
    add_sketches(store, 10, seed=1)
    add_sketches(store, 4, seed=2, split="test")
    options = {"alpha": TEST_ALPHA, "views": 1, "epochs": 15}
    first = retrain(store, options)["version"]
    classifier = Classifier(store)
    images = [image for _, image in dataset(2, seed=9)]
    answers, errors, stop = [], [], threading.Event()

    def classify(n):
        while not stop.is_set():
            started = time.monotonic()
            try:
                version = classifier.classify(images[n % len(images)])["version"]
                answers.append((started, time.monotonic(), version))
            except Exception as error:  # any error at all fails the test below
                errors.append(repr(error))
            n += 1

    threads = [threading.Thread(target=classify, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    try:
        add_sketches(store, 6, seed=3)
        second = retrain(Store(store.path), options, force=True)["version"]
        switched = time.monotonic()
        time.sleep(1.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert errors == []
    assert {version for _, _, version in answers} == {first, second}
    # Atomic: once any answer came back from the new version, no call that
    # started after it used the old one.
    first_new_answer = min(end for _, end, version in answers if version == second)
    assert all(start < first_new_answer for start, _, version in answers if version == first)
    assert all(version == second for start, _, version in answers if start > switched)
