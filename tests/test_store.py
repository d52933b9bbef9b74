"""The SQLite store on a real file: schema and migrations, de-duplication,
all-or-none writes, label rules, the single live model version, corrections,
and many writers at once (threads and another process)."""
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from db import Store, clean_label
from db.schema import MIGRATIONS, SCHEMA_VERSION, statements
from db.store import MAX_LABEL_LENGTH
from db.errors import InvalidLabel, SketchError

from tests.helpers.common import ROOT


def item(data, split="train", label=None, source="upload"):
    return {"data": data, "width": 10, "height": 10, "source": source, "split": split,
            "label": label}


def raw(store):
    """A separate plain connection, so checks do not trust the code under test."""
    conn = sqlite3.connect(store.path)
    conn.row_factory = None
    return conn


def count(store, table):
    with raw(store) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def labels_by_image(store):
    with raw(store) as conn:
        return dict(conn.execute(
            "SELECT l.image_id, c.name FROM labels l JOIN classes c ON c.id = l.class_id"))


# -- schema and migrations ------------------------------------------------------


def test_new_file_is_created_at_current_schema_version_with_every_table(store):
    with raw(store) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"images", "classes", "labels", "model_versions", "predictions", "corrections",
            "features"} <= tables
    assert store.schema_version() == SCHEMA_VERSION == len(MIGRATIONS)
    assert store.integrity_check() == "ok"


def test_file_is_in_wal_mode_and_connections_enforce_foreign_keys(store):
    with raw(store) as conn:
        # journal_mode=WAL is persistent in the file, unlike most pragmas.
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        store.set_label([12345], "circle", "test")


def schema_v1_file(path):
    """An open connection to a new file at schema version 1 (the first migration only)."""
    conn = sqlite3.connect(path)
    for sql in statements(MIGRATIONS[0]):
        conn.execute(sql)
    conn.execute("PRAGMA user_version = 1")
    return conn


def test_older_schema_file_is_migrated_in_place_and_keeps_its_rows(tmp_path):
    path = tmp_path / "v1.db"
    conn = schema_v1_file(path)
    conn.execute("INSERT INTO images (sha256, data, width, height, source, split, created_at)"
                 " VALUES ('abc', x'89504e47', 3, 4, 'upload', 'test', '2024-01-01')")
    conn.commit()
    conn.close()

    store = Store(path)
    try:
        assert store.schema_version() == SCHEMA_VERSION
        row = store.image(1)
        assert (row["sha256"], row["data"], row["width"], row["height"], row["split"]) == (
            "abc", b"\x89PNG", 3, 4, "test")
        assert row["deleted_at"] is None
        assert store.count_images() == 1
        with raw(store) as check:
            columns = {r[1] for r in check.execute("PRAGMA table_info(images)")}
            indexes = {r[0] for r in check.execute(
                "SELECT name FROM sqlite_master WHERE type='index'")}
        assert "deleted_at" in columns
        assert {"labels_class", "corrections_status", "predictions_image"} <= indexes
    finally:
        store.close()
    # Opening again does not re-run a migration (ALTER TABLE would fail twice).
    again = Store(path)
    assert again.schema_version() == SCHEMA_VERSION and again.count_images() == 1
    again.close()


def test_file_from_newer_code_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE images (id INTEGER PRIMARY KEY)")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(SketchError, match="newer"):
        Store(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["images"]
    conn.close()


# -- images -------------------------------------------------------------------


def test_add_images_deduplicates_by_content(store):
    first = store.add_images([item(b"one"), item(b"two")])
    assert [created for _, created in first] == [True, True]
    again = store.add_images([item(b"two", label="circle"), item(b"three"), item(b"three")])
    assert again[0] == (first[1][0], False)
    assert again[1][1] is True and again[2] == (again[1][0], False)
    assert count(store, "images") == 3
    assert store.add_image(**item(b"one")) == (first[0][0], False)


def test_add_images_with_a_bad_item_in_the_middle_writes_nothing(store):
    batch = [item(b"a", label="circle"), item(b"b", label="square"),
             item(b"c", split="validation", label="star"), item(b"d", label="triangle")]
    with pytest.raises(SketchError, match="split"):
        store.add_images(batch)
    # The rows and classes written before the bad item were rolled back too.
    for table in ("images", "labels", "classes"):
        assert count(store, table) == 0, table
    with pytest.raises(SketchError, match="source"):
        store.add_images([item(b"a"), item(b"e", source="ftp")])
    assert count(store, "images") == 0
    # The connection is usable afterwards (no transaction left open).
    assert store.add_images([item(b"a")])[0][1] is True


def test_set_label_labels_many_images_all_or_none(store):
    ids = [i for i, _ in store.add_images([item(bytes([n])) for n in range(50)])]
    store.set_label(ids, "circle", "tester")
    assert set(labels_by_image(store).values()) == {"circle"}
    assert len(labels_by_image(store)) == 50
    # One id that does not exist, at the end: none of the 50 may be relabeled.
    with pytest.raises(sqlite3.IntegrityError):
        store.set_label(ids + [999_999], "square", "tester")
    assert set(labels_by_image(store).values()) == {"circle"}
    assert [c["name"] for c in store.classes()] == ["circle"]
    store.set_label(ids[:10], "square", "tester")
    assert sorted(labels_by_image(store).values()).count("square") == 10
    assert {c["name"]: c["images"] for c in store.classes()} == {"circle": 40, "square": 10}


# -- labels ------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "", " ", "\t\n ", "x" * 500, "x" * (MAX_LABEL_LENGTH + 1), "a\x00b", "bell\x07",
    "\x1b[31mred", "evil\u202eexe.png", None, 42,
], ids=["empty", "space", "whitespace", "500_chars", "one_too_long", "nul", "bel",
        "ansi_escape", "bidi_override", "none", "number"])
def test_clean_label_refuses_unusable_names(text):
    with pytest.raises(InvalidLabel):
        clean_label(text)


def test_clean_label_normalizes_whitespace_and_unicode_form():
    assert clean_label("  big   circle ") == "big circle"
    # Decomposed and composed é are one class, and length counts characters.
    assert clean_label("cafe\u0301") == clean_label("caf\u00e9") == "caf\u00e9"
    assert clean_label("e\u0301" * MAX_LABEL_LENGTH) == "\u00e9" * MAX_LABEL_LENGTH
    assert clean_label("x" * MAX_LABEL_LENGTH) == "x" * MAX_LABEL_LENGTH


@pytest.mark.parametrize("text", ["\U0001F469\u200d\U0001F4BB", "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"],
                         ids=["zwj_emoji", "persian_zwnj"])
def test_clean_label_accepts_joiners_that_real_words_and_emoji_need(text):
    assert clean_label(text) == text


# Names that look like "circle" but are other strings: each would be a class of its own.
@pytest.mark.parametrize("text", [
    "cir\u200ccle", "cir\u200dcle", "\u200ccircle", "circle\u200d", "circle\ufe0f",
    "\ufe0fcircle", "cir\ufe0ecle", "circle\u3164", "circle1\ufe0f",
    "\u0441ircle", "circl\u0435", "\u03bfval", "big \u0441ircle", "\u0441ir\u0441le",
], ids=["zwnj_in_latin", "zwj_in_latin", "zwnj_first", "zwj_last", "variation_selector",
        "selector_first", "text_selector_in_latin", "hangul_filler", "selector_on_digit",
        "cyrillic_c", "cyrillic_e", "greek_omicron", "cyrillic_in_second_word",
        "two_cyrillic_letters"])
def test_clean_label_refuses_invisible_and_mixed_script_lookalikes(text):
    with pytest.raises(InvalidLabel):
        clean_label(text)


def test_clean_label_says_which_scripts_a_mixed_word_mixes():
    with pytest.raises(InvalidLabel, match="'\u0441ircle' mixes Cyrillic and Latin letters"):
        clean_label("\u0441ircle")
    with pytest.raises(InvalidLabel, match="invisible"):
        clean_label("cir\u200ccle")


def test_clean_label_folds_compatibility_forms_into_one_class(store):
    # NFKC: fullwidth letters, ligatures and no-break spaces are the plain ones.
    assert clean_label("\uff43\uff49\uff52\uff43\uff4c\uff45") == "circle"
    assert clean_label("\ufb01sh") == "fish"
    assert clean_label("big\u00a0circle") == clean_label("big\u3000circle") == "big circle"
    first, _ = store.add_image(**item(b"a", label="circle"))
    second, _ = store.add_image(**item(b"b", label="\uff43\uff49\uff52\uff43\uff4c\uff45"))
    assert [c["name"] for c in store.classes()] == ["circle"]
    assert labels_by_image(store) == {first: "circle", second: "circle"}


@pytest.mark.parametrize("text", [
    "\U0001F469\u200d\U0001F4BB", "\U0001F3F3\ufe0f\u200d\U0001F308", "\u2764\ufe0f",
    "1\ufe0f\u20e3", "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
    "\u0915\u094d\u200d\u0937", "\u043a\u0440\u0443\u0433", "\u043a\u0440\u0443\u0433 circle",
    "\u5186\u3068\u56db\u89d2", "caf\u00e9", "\u03c0\u03b9", "Stra\u00dfe 3",
], ids=["zwj_emoji", "flag_emoji_sequence", "emoji_presentation", "keycap", "persian_zwnj",
        "devanagari_zwj", "cyrillic_word", "cyrillic_and_latin_words", "japanese",
        "accented_latin", "greek_word", "latin_with_digits"])
def test_clean_label_keeps_names_in_any_one_script_and_emoji_sequences(text):
    assert clean_label(text) == text


@pytest.mark.parametrize("name", [
    "猫 🐱", "Ünïcödé", "<img src=x onerror=alert(1)>", "'); DROP TABLE images;--",
    "Robert\"); DELETE FROM labels; --", "100% {{ template }} ${x}",
])
def test_hostile_or_unicode_labels_are_stored_verbatim_and_harmless(store, name):
    image_id, _ = store.add_image(**item(b"img", label=name))
    store.add_image(**item(b"other", label="circle"))
    assert labels_by_image(store)[image_id] == name
    assert name in [c["name"] for c in store.classes()]
    with raw(store) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"images", "labels", "classes"} <= tables
    assert count(store, "images") == 2 and count(store, "labels") == 2


# -- model versions ------------------------------------------------------------


def add_version(store, live, name="v"):
    return store.add_model_version("mobilenet_v1_0.25_224", ["a", "b"], {"alpha": 0.25},
                                   {"accuracy": 0.5, "name": name}, b"head", live=live)


def live_ids(store):
    with raw(store) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM model_versions WHERE live = 1")]


def test_only_one_version_is_ever_live(store):
    assert store.live_version_id() is None and store.model_version() is None
    first = add_version(store, live=True)
    second = add_version(store, live=False)
    assert live_ids(store) == [first]
    third = add_version(store, live=True)
    assert live_ids(store) == [third]
    store.set_live(second)
    assert live_ids(store) == [second] == [store.live_version_id()]
    assert store.model_version()["id"] == second and store.model_version()["live"] is True
    assert [v["live"] for v in store.model_versions()] == [False, True, False]


def test_set_live_of_a_missing_version_changes_nothing(store):
    first = add_version(store, live=True)
    with pytest.raises(SketchError, match="no model version"):
        store.set_live(first + 10)
    assert live_ids(store) == [first]


def test_unique_index_refuses_a_second_live_row_written_behind_the_stores_back(store):
    add_version(store, live=True)
    second = add_version(store, live=False)
    with raw(store) as conn, pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        conn.execute("UPDATE model_versions SET live = 1 WHERE id = ?", [second])


# -- corrections ---------------------------------------------------------------


def test_pending_correction_does_not_label_until_accepted(store):
    image_id, _ = store.add_image(**item(b"img", label="circle"))
    other_id, _ = store.add_image(**item(b"img2", label="circle"))
    keep = store.add_correction(image_id, "square", "sketch", "alice", predicted_label="circle")
    drop = store.add_correction(other_id, "star", "sketch", "mallory")
    assert labels_by_image(store) == {image_id: "circle", other_id: "circle"}
    assert [c["id"] for c in store.corrections("pending")] == [keep, drop]

    store.review_corrections([keep], "accepted", "bob")
    store.review_corrections([drop], "rejected", "bob")
    assert labels_by_image(store) == {image_id: "square", other_id: "circle"}
    assert [c["id"] for c in store.corrections("accepted")] == [keep]
    assert [c["id"] for c in store.corrections("rejected")] == [drop]
    assert store.corrections("pending") == []
    assert all(c["reviewed_at"] for c in store.corrections())
    assert "star" not in [c["name"] for c in store.classes()]


def test_accepted_on_arrival_correction_labels_immediately(store):
    image_id, _ = store.add_image(**item(b"img"))
    store.add_correction(image_id, "triangle", "sketch", "owner", accept=True)
    assert labels_by_image(store) == {image_id: "triangle"}
    assert store.corrections()[0]["status"] == "accepted"


def test_a_correction_is_stored_once_until_it_is_rejected(store):
    image = {k: v for k, v in item(b"img").items() if k in ("data", "width", "height")}
    first, image_id, new = store.record_correction(image, "square", "sketch", "alice")
    assert new and store.record_correction(image, "square", "sketch", "alice") == (
        first, image_id, False)
    # Another sender, or another label, is another correction.
    assert store.record_correction(image, "square", "sketch", "bob")[2]
    assert store.record_correction(image, "star", "sketch", "alice")[2]
    store.review_corrections([first], "rejected", "owner")
    again, _, new = store.record_correction(image, "square", "sketch", "alice")
    assert new and again != first
    assert len(store.corrections()) == 4


def test_a_correction_keeps_whether_the_answer_it_replaces_said_i_dont_know(store):
    image = {k: v for k, v in item(b"img").items() if k in ("data", "width", "height")}
    top = [["star", 0.9], ["square", 0.1]]
    for label, judged in (("ring", {"unknown": True, "unknown_score": 1.7}),
                          ("house", {"unknown": False, "unknown_score": 0.4}), ("cat", {})):
        prediction = {"version": None, "label": "star", "confidence": 0.9, "top": top, **judged}
        store.record_correction(image, label, "sketch", "alice", prediction=prediction)
    rows = store.db.execute("SELECT unknown, unknown_score FROM predictions ORDER BY id").fetchall()
    assert [tuple(r) for r in rows] == [(1, 1.7), (0, 0.4), (None, None)]


def test_review_of_many_corrections_is_all_or_none(store):
    image_id, _ = store.add_image(**item(b"img", label="circle"))
    pending = store.add_correction(image_id, "square", "sketch", "alice")
    with pytest.raises(SketchError, match="no correction"):
        store.review_corrections([pending, pending + 100], "accepted", "bob")
    assert labels_by_image(store) == {image_id: "circle"}
    assert store.corrections()[0]["status"] == "pending"
    with pytest.raises(SketchError):
        store.review_corrections([pending], "maybe", "bob")
    with pytest.raises(InvalidLabel):
        store.add_correction(image_id, "\x00", "sketch", "alice")
    assert len(store.corrections()) == 1


# -- concurrency -------------------------------------------------------------

THREADS = 8
PER_WRITER = 25
SHARED = b"the same image sent by everyone"

WRITER_SCRIPT = """
import sys
import time
import db.store
from db import Store
db.store.CORRECTIONS_PER_MINUTE = 10**6  # about concurrency, not rate limits
store = Store(sys.argv[1])
image_id, _ = store.add_image(data=b"seed-process", width=1, height=1, source="upload")
print("ready", flush=True)
sys.stdin.readline()
shared = store.add_image(data={shared!r}, width=1, height=1, source="upload")
print("shared", shared[0], shared[1], flush=True)
for i in range({n}):
    if i == {n} // 2:
        # Finish only after the threads have written, so the writers overlap
        # however the scheduler treats this process.
        waited = time.time()
        while not store.db.execute(
                "SELECT COUNT(*) FROM images WHERE source = 'sketch'").fetchone()[0]:
            assert time.time() - waited < 60, "the threads never wrote"
            time.sleep(0.01)
    new_id, created = store.add_image(data=f"process-{{i}}".encode(), width=2, height=1,
                                      source="upload", label="process")
    assert created
    store.add_correction(new_id, "square", "sketch", "process", accept=i % 2 == 0)
""".format(shared=SHARED, n=PER_WRITER)


def wait_for_rows(store, where, timeout=60):
    started = time.time()
    while not store.db.execute(f"SELECT COUNT(*) FROM images WHERE {where}").fetchone()[0]:
        assert time.time() - started < timeout, f"no row where {where}"
        time.sleep(0.01)


def test_threads_and_another_process_write_concurrently_without_loss_or_lock_errors(
        store, monkeypatch):
    # About concurrency, not rate limits: each writer sends more than a minute's share.
    monkeypatch.setattr("db.store.CORRECTIONS_PER_MINUTE", 10**6)
    process = subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT, store.path], cwd=ROOT,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "ready"
        start = threading.Barrier(THREADS + 1)
        errors, shared_results = [], []

        def writer(n):
            try:
                start.wait()
                shared_results.append(store.add_image(data=SHARED, width=1, height=1,
                                                      source="upload"))
                for i in range(PER_WRITER):
                    if i == PER_WRITER // 2:
                        wait_for_rows(store, "width = 2")  # a row of the other process
                    image_id, created = store.add_image(
                        data=f"thread-{n}-{i}".encode(), width=1, height=1, source="sketch",
                        label=f"thread {n}")
                    assert created
                    store.add_correction(image_id, "circle", "sketch", f"user{n}",
                                         accept=i % 2 == 0)
            except BaseException as error:  # reported below, with the thread number
                errors.append((n, repr(error)))
            finally:
                store.close()

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(THREADS)]
        for thread in threads:
            thread.start()
        process.stdin.write("go\n")
        process.stdin.flush()
        start.wait()
        for thread in threads:
            thread.join(timeout=120)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert errors == []
    assert process.returncode == 0, err
    assert "locked" not in err

    with raw(store) as conn:
        datas = [r[0] for r in conn.execute("SELECT data FROM images")]
        order = [r[0][:7] for r in conn.execute("SELECT data FROM images ORDER BY id")]
        corrections = conn.execute(
            "SELECT sender, status, COUNT(*) FROM corrections GROUP BY sender, status").fetchall()
    expected = ({f"thread-{n}-{i}".encode() for n in range(THREADS) for i in range(PER_WRITER)}
                | {f"process-{i}".encode() for i in range(PER_WRITER)}
                | {SHARED, b"seed-process"})
    assert len(datas) == len(expected) and set(datas) == expected
    # The writers really overlapped: the other process's rows are not all
    # before or all after the threads' rows (the script waits to make sure).
    process_at = [i for i, prefix in enumerate(order) if prefix == b"process"]
    thread_at = [i for i, prefix in enumerate(order) if prefix == b"thread-"]
    assert process_at[0] < thread_at[-1] and thread_at[0] < process_at[-1]
    # The image everyone sent at once was created exactly once, one id for all.
    process_shared = out.split("shared ")[1].split()
    ids = {image_id for image_id, _ in shared_results} | {int(process_shared[0])}
    created = [c for _, c in shared_results] + [process_shared[1] == "True"]
    assert len(ids) == 1 and created.count(True) == 1
    accepted, pending = (PER_WRITER + 1) // 2, PER_WRITER // 2
    senders = [f"user{n}" for n in range(THREADS)] + ["process"]
    assert sorted(corrections) == sorted(
        [(s, "accepted", accepted) for s in senders] + [(s, "pending", pending) for s in senders])
    classes = {c["name"]: c["images"] for c in store.classes()}
    assert classes["circle"] == THREADS * accepted and classes["square"] == accepted
    assert store.integrity_check() == "ok"


MIGRATING_SCRIPT = """
import sys, time
from db import Store
while time.time() < float(sys.argv[2]):
    time.sleep(0.001)
store = Store(sys.argv[1])
store.add_image(data=sys.argv[3].encode(), width=1, height=1, source="upload", label="x")
print(store.schema_version())
"""


@pytest.mark.slow
def test_processes_opening_an_old_file_at_once_migrate_it_exactly_once(tmp_path):
    path = tmp_path / "v1.db"
    conn = schema_v1_file(path)
    conn.commit()
    conn.close()
    # All start together (after the interpreters are up) to race for the migration.
    start_at = str(time.time() + 1.5)
    processes = [subprocess.Popen([sys.executable, "-c", MIGRATING_SCRIPT, str(path), start_at,
                                   f"process-{n}"], cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for n in range(4)]
    results = [process.communicate(timeout=120) + (process.returncode,) for process in processes]
    assert [(code, out.strip()) for out, _, code in results] == [(0, str(SCHEMA_VERSION))] * 4, \
        [err[-500:] for _, err, _ in results]
    store = Store(path)
    assert store.count_images() == 4 and store.integrity_check() == "ok"
    store.close()


@pytest.mark.parametrize("text", ["abc\u202edcba", "a\u200bb", "bell\x07", "nul\x00"],
                         ids=["bidi_override", "zero_width_space", "bell", "nul"])
def test_clean_label_refuses_characters_that_hide_or_reorder_text(text):
    with pytest.raises(InvalidLabel):
        clean_label(text)


def _one_image(store):
    return store.add_image(**item(b"rate", label=None))[0]


def test_a_sender_may_send_corrections_per_minute_then_is_told_to_wait(store):
    from db.store import CORRECTIONS_PER_MINUTE
    from db.errors import RateLimited
    image_id = _one_image(store)
    for _ in range(CORRECTIONS_PER_MINUTE):
        store.add_correction(image_id, "circle", "sketch", "anonymous@10.0.0.1")
    with pytest.raises(RateLimited, match="a minute"):
        store.add_correction(image_id, "circle", "sketch", "anonymous@10.0.0.1")
    # Others, and the owner whose corrections are accepted at once, are not held back.
    store.add_correction(image_id, "circle", "sketch", "anonymous@10.0.0.2")
    store.add_correction(image_id, "circle", "sketch", "anonymous@10.0.0.1", accept=True)
    assert len(store.corrections()) == CORRECTIONS_PER_MINUTE + 2


def test_all_senders_together_are_limited_so_one_client_posing_as_many_is_too(
        store, monkeypatch):
    from db.errors import RateLimited
    monkeypatch.setattr("db.store.ALL_CORRECTIONS_PER_MINUTE", 5)
    image_id = _one_image(store)
    for address in range(5):
        store.add_correction(image_id, "circle", "sketch", f"anonymous@10.0.0.{address}")
    with pytest.raises(RateLimited, match="all the corrections it takes in a minute"):
        store.add_correction(image_id, "circle", "sketch", "anonymous@10.0.0.99")
    # The owner's, accepted on arrival, neither count nor are held back.
    store.add_correction(image_id, "circle", "sketch", "owner", accept=True)
    assert len(store.corrections()) == 6


def test_a_sender_name_is_cut_to_its_longest(store):
    from db.store import MAX_SENDER_LENGTH
    image_id = _one_image(store)
    store.add_correction(image_id, "circle", "sketch", "anonymous@" + "9" * 5000)
    assert len(store.corrections()[0]["sender"]) == MAX_SENDER_LENGTH


def test_a_sender_may_send_corrections_per_day(store, monkeypatch):
    from datetime import timedelta
    from db import store as store_module
    from db.store import CORRECTIONS_PER_DAY
    from db.errors import RateLimited
    image_id = _one_image(store)
    start = store_module.utcnow()
    ticks = iter(range(10**6))
    # Every clock reading is 10 s later: never 20 a minute, but 500 within a day.
    monkeypatch.setattr(store_module, "utcnow", lambda: start + timedelta(seconds=10 * next(ticks)))
    for _ in range(CORRECTIONS_PER_DAY):
        store.add_correction(image_id, "circle", "sketch", "anonymous@10.0.0.3")
    with pytest.raises(RateLimited, match="a day"):
        store.add_correction(image_id, "circle", "sketch", "anonymous@10.0.0.3")
    assert len(store.corrections()) == CORRECTIONS_PER_DAY


def test_deleting_a_class_with_forgotten_deleted_images_writes_nothing_when_it_fails(
        store, monkeypatch):
    from db import labeling
    [(image_id, _)] = store.add_images([item(b"kite", label="kite")])
    labeling.delete_images(store, [image_id])
    [kite] = [c["id"] for c in store.classes() if c["name"] == "kite"]

    def failing(class_id):
        raise sqlite3.OperationalError("disk I/O error")
    monkeypatch.setattr(store, "remove_class", failing)
    with pytest.raises(SketchError, match="Nothing was saved"):
        labeling.delete_class(store, kite, forget_deleted=True)
    # The deleted image's label was put back with the class.
    assert count(store, "labels") == 1 and count(store, "classes") == 1
    monkeypatch.undo()
    assert labeling.delete_class(store, kite, forget_deleted=True) == "kite"
    assert count(store, "labels") == 0 and count(store, "classes") == 0
