"""One SQLite file for images, labels, predictions, corrections, cached
features and model versions, used through sqlite-utils.

Each thread gets its own connection (Gradio and the labeler serve requests
from worker threads, and a sqlite3 connection must not be shared between
them). Writes run in short `BEGIN IMMEDIATE` transactions so that concurrent
writers queue on the busy timeout instead of failing half-way.
"""
import contextlib
import hashlib
import json
import os
import sqlite3
import threading
import time
import unicodedata
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlite_utils

from db.schema import MIGRATIONS, SCHEMA_VERSION, statements
from db.errors import InvalidLabel, RateLimited, SketchError, StorageError

DEFAULT_PATH = "data/sketches.db"
BUSY_TIMEOUT_MS = 15_000
MAX_LABEL_LENGTH = 64
SOURCES = ("sketch", "webcam", "upload", "import", "generated")
SPLITS = ("train", "test")
CORRECTION_STATUSES = ("pending", "accepted", "rejected")
# Corrections one sender may send (the owner's, accepted at once, are not counted).
CORRECTIONS_PER_MINUTE = 20
CORRECTIONS_PER_DAY = 500


def default_path():
    return os.environ.get("SKETCHLAB_DB") or DEFAULT_PATH


def utcnow():
    return datetime.now(timezone.utc)


def now():
    return utcnow().isoformat(timespec="milliseconds")


def clean_label(text):
    """The canonical form of a class name, or InvalidLabel saying why not.

    Unicode and punctuation are allowed (they are escaped wherever shown);
    control characters, blank names and names over MAX_LABEL_LENGTH are not.
    """
    if not isinstance(text, str):
        raise InvalidLabel("A class name must be text.")
    name = " ".join(unicodedata.normalize("NFC", text).split())
    if not name:
        raise InvalidLabel("A class name cannot be empty.")
    if len(name) > MAX_LABEL_LENGTH:
        raise InvalidLabel(f"A class name can have at most {MAX_LABEL_LENGTH} characters.")
    if any(_invisible(c) for c in name):
        raise InvalidLabel("A class name cannot contain control or invisible formatting characters.")
    return name


# Zero-width (non-)joiners build emoji sequences and Persian or Indic words.
_JOINERS = {"\u200c", "\u200d"}


def check_split(split):
    """`split`, or SketchError when it is not train or test."""
    if split not in SPLITS:
        raise SketchError(f"Unknown split {split!r}; expected train or test.")
    return split


def _invisible(char):
    """Controls, surrogates and format characters (bidi overrides that reorder
    text on screen, zero-width spaces) except the joiners words need.
    Unassigned code points pass: newer emoji are unassigned to older Pythons."""
    category = unicodedata.category(char)
    return category in ("Cc", "Cs") or (category == "Cf" and char not in _JOINERS)


class Store:
    def __init__(self, path=None):
        self.path = str(path or default_path())
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._migrate()

    # -- connections and transactions ------------------------------------

    @property
    def db(self):
        db = getattr(self._local, "db", None)
        if db is None:
            try:
                conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                                       isolation_level=None, check_same_thread=False)
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                _use_wal(conn)
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("PRAGMA foreign_keys = ON")
            except sqlite3.OperationalError as error:
                raise self._storage_error(error) from error
            db = self._local.db = sqlite_utils.Database(conn)
        return db

    @contextlib.contextmanager
    def transaction(self):
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception.

        Nested use joins the outer transaction, so helpers can be composed.
        """
        db = self.db
        if db.conn.in_transaction:
            yield db
            return
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                if db.conn.in_transaction:
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.OperationalError as error:
            if db.conn.in_transaction:
                db.execute("ROLLBACK")
            raise self._storage_error(error) from error

    def _storage_error(self, error):
        text = str(error)
        if "readonly" in text or "read-only" in text:
            return StorageError(f"The database {self.path} is read-only: nothing was saved. "
                                "Check the file's and folder's permissions.")
        if "full" in text:
            return StorageError(f"The database {self.path} cannot grow (disk full): nothing "
                                "was saved. Free some space and try again.")
        if "locked" in text or "busy" in text:
            return StorageError("The database is busy with another writer: nothing was saved. "
                                "Try again in a moment.")
        return StorageError(f"Database error on {self.path}: {text}. Nothing was saved.")

    def close(self):
        db = getattr(self._local, "db", None)
        if db is not None:
            db.conn.close()
            self._local.db = None

    def _migrate(self):
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            raise SketchError(
                f"{self.path} has schema version {version}, newer than this code "
                f"understands ({SCHEMA_VERSION}); update the code.")
        for number in range(version + 1, SCHEMA_VERSION + 1):
            with self.transaction() as db:
                # Another process may have migrated while we waited for the lock.
                if self.schema_version() >= number:
                    continue
                for sql in statements(MIGRATIONS[number - 1]):
                    db.execute(sql)
                db.execute(f"PRAGMA user_version = {number}")

    def schema_version(self):
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    def integrity_check(self):
        return self.db.execute("PRAGMA integrity_check").fetchone()[0]

    # -- images ------------------------------------------------------------

    def add_images(self, items):
        """Store normalized images, de-duplicated by sha256, in one transaction.

        Each item is a dict with `data` (normalized PNG bytes), `width`,
        `height`, `source`, and optionally `split`, `label` and `labeled_by`.
        Returns one `(image_id, created)` pair per item.
        """
        results = []
        with self.transaction() as db:
            for item in items:
                results.append(self._add_image(db, **item))
        return results

    def add_image(self, **item):
        return self.add_images([item])[0]

    def _add_image(self, db, data, width, height, source, split="train",
                   label=None, labeled_by=None):
        if source not in SOURCES:
            raise SketchError(f"Unknown image source {source!r}; expected one of {SOURCES}.")
        check_split(split)
        digest = hashlib.sha256(data).hexdigest()
        row = db.execute("SELECT id FROM images WHERE sha256 = ?", [digest]).fetchone()
        if row:
            return row[0], False
        cursor = db.execute(
            "INSERT INTO images (sha256, data, width, height, source, split, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [digest, data, width, height, source, split, now()])
        image_id = cursor.lastrowid
        if label is not None:
            self._set_label(db, [image_id], label, labeled_by or source)
        return image_id, True

    def image(self, image_id):
        rows = list(self.db.query(
            "SELECT id, sha256, data, width, height, source, split, created_at, deleted_at"
            " FROM images WHERE id = ?", [image_id]))
        return rows[0] if rows else None

    def image_data(self, image_ids):
        """(id, PNG bytes) for the given ids, in the given order."""
        found = {}
        for chunk in _chunks(list(image_ids), 500):
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(
                    f"SELECT id, data FROM images WHERE id IN ({marks})", chunk):
                found[row[0]] = row[1]
        return [(i, found[i]) for i in image_ids if i in found]

    def count_images(self):
        return self.db.execute(
            "SELECT COUNT(*) FROM images WHERE deleted_at IS NULL").fetchone()[0]

    # -- classes and labels -------------------------------------------------

    def ensure_class(self, name):
        name = clean_label(name)
        with self.transaction() as db:
            return self._ensure_class(db, name)

    def _ensure_class(self, db, name):
        row = db.execute("SELECT id FROM classes WHERE name = ?", [name]).fetchone()
        if row:
            return row[0]
        return db.execute("INSERT INTO classes (name, created_at) VALUES (?, ?)",
                          [name, now()]).lastrowid

    def set_label(self, image_ids, label, labeled_by):
        """Label many images at once, all or none."""
        with self.transaction() as db:
            self._set_label(db, list(image_ids), label, labeled_by)

    def _set_label(self, db, image_ids, label, labeled_by):
        class_id = self._ensure_class(db, clean_label(label))
        stamp = now()
        db.conn.executemany(
            "INSERT INTO labels (image_id, class_id, labeled_by, created_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT(image_id) DO UPDATE SET"
            " class_id = excluded.class_id, labeled_by = excluded.labeled_by,"
            " created_at = excluded.created_at",
            [(image_id, class_id, labeled_by, stamp) for image_id in image_ids])

    def remove_labels(self, image_ids):
        """Make images unlabeled again (they stay stored, with their features).
        Returns how many labels were removed."""
        removed = 0
        with self.transaction() as db:
            for chunk in _chunks(sorted(set(image_ids)), 500):
                marks = ",".join("?" * len(chunk))
                removed += db.execute(f"DELETE FROM labels WHERE image_id IN ({marks})",
                                      chunk).rowcount
        return removed

    def classes(self):
        """Every class with its count of live labeled images, by name."""
        return list(self.db.query(
            "SELECT c.id, c.name, COUNT(i.id) AS images FROM classes c"
            " LEFT JOIN labels l ON l.class_id = c.id"
            " LEFT JOIN images i ON i.id = l.image_id AND i.deleted_at IS NULL"
            " GROUP BY c.id ORDER BY c.name"))

    def labeled_images(self, split):
        """[(image_id, class name)] of live labeled images in a split, by id."""
        return [(r[0], r[1]) for r in self.db.execute(
            "SELECT i.id, c.name FROM images i JOIN labels l ON l.image_id = i.id"
            " JOIN classes c ON c.id = l.class_id"
            " WHERE i.split = ? AND i.deleted_at IS NULL ORDER BY i.id", [split])]

    def set_split(self, image_ids, split):
        check_split(split)
        with self.transaction() as db:
            for chunk in _chunks(list(image_ids), 500):
                marks = ",".join("?" * len(chunk))
                db.execute(f"UPDATE images SET split = ? WHERE id IN ({marks})",
                           [split, *chunk])

    # -- features -----------------------------------------------------------

    def missing_features(self, image_ids, backbone, views):
        """The (image_id, view) pairs among `image_ids` x range(views) not cached."""
        have = set()
        for chunk in _chunks(list(image_ids), 500):
            marks = ",".join("?" * len(chunk))
            have.update(self.db.execute(
                f"SELECT image_id, view FROM features WHERE backbone = ? AND view < ?"
                f" AND image_id IN ({marks})", [backbone, views, *chunk]).fetchall())
        return [(i, v) for i in image_ids for v in range(views) if (i, v) not in have]

    def put_features(self, backbone, rows):
        """Cache feature vectors: rows of (image_id, view, vector bytes), in one transaction."""
        with self.transaction() as db:
            db.conn.executemany(
                "INSERT OR REPLACE INTO features (image_id, backbone, view, vector)"
                " VALUES (?, ?, ?, ?)", [(i, backbone, v, vec) for i, v, vec in rows])

    def features(self, image_ids, backbone, views):
        """{(image_id, view): vector bytes} for the cached features among those asked."""
        found = {}
        for chunk in _chunks(list(image_ids), 500):
            marks = ",".join("?" * len(chunk))
            for image_id, view, vector in self.db.execute(
                    f"SELECT image_id, view, vector FROM features WHERE backbone = ?"
                    f" AND view < ? AND image_id IN ({marks})", [backbone, views, *chunk]):
                found[(image_id, view)] = vector
        return found

    def count_features(self, backbone=None):
        if backbone is None:
            return self.db.execute("SELECT COUNT(*) FROM features").fetchone()[0]
        return self.db.execute("SELECT COUNT(*) FROM features WHERE backbone = ?",
                               [backbone]).fetchone()[0]

    # -- model versions -------------------------------------------------------

    def add_model_version(self, backbone, classes, config, metrics, head, live):
        """Record a trained head; when `live`, it replaces the live one atomically."""
        with self.transaction() as db:
            version = db.execute(
                "INSERT INTO model_versions (created_at, backbone, classes, config, metrics, head)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [now(), backbone, json.dumps(classes), json.dumps(config),
                 json.dumps(metrics), head]).lastrowid
            if live:
                self._make_live(db, version)
        return version

    def set_live(self, version):
        with self.transaction() as db:
            if not db.execute("SELECT 1 FROM model_versions WHERE id = ?", [version]).fetchone():
                raise SketchError(f"There is no model version {version}.")
            self._make_live(db, version)

    def _make_live(self, db, version):
        db.execute("UPDATE model_versions SET live = 0 WHERE live = 1")
        db.execute("UPDATE model_versions SET live = 1 WHERE id = ?", [version])

    def live_version_id(self):
        row = self.db.execute("SELECT id FROM model_versions WHERE live = 1").fetchone()
        return row[0] if row else None

    def live_version_names(self):
        """(id, class names) of the live version, or None: what serving checks per
        request (a version switch or a class rename changes it)."""
        row = self.db.execute("SELECT id, classes FROM model_versions WHERE live = 1").fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def model_version(self, version=None):
        """A model version with its head weights; the live one when `version` is None."""
        where, args = ("live = 1", []) if version is None else ("id = ?", [version])
        rows = list(self.db.query(f"SELECT * FROM model_versions WHERE {where}", args))
        return _decode_version(rows[0]) if rows else None

    def model_versions(self):
        """Every version, newest first, without head weights."""
        return [_decode_version(r) for r in self.db.query(
            "SELECT id, created_at, backbone, classes, config, metrics, live"
            " FROM model_versions ORDER BY id DESC")]

    # -- predictions and corrections -----------------------------------------

    def add_prediction(self, image_id, model_version, label, confidence, top):
        with self.transaction() as db:
            return db.execute(
                "INSERT INTO predictions (image_id, model_version, label, confidence, top,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?)",
                [image_id, model_version, label, confidence, json.dumps(top), now()]).lastrowid

    def add_correction(self, image_id, label, source, sender, predicted_label=None,
                       prediction_id=None, accept=False):
        """Record that `sender` says the image shows `label`. Accepted ones label the image."""
        label = clean_label(label)
        status = "accepted" if accept else "pending"
        with self.transaction() as db:
            if not accept:
                self._check_rate(db, sender)
            correction = db.execute(
                "INSERT INTO corrections (image_id, prediction_id, predicted_label, label,"
                " source, sender, status, created_at, reviewed_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [image_id, prediction_id, predicted_label, label, source, sender, status,
                 now(), now() if accept else None]).lastrowid
            if accept:
                self._set_label(db, [image_id], label, f"correction:{sender}")
        return correction

    def record_correction(self, image, label, source, sender, prediction=None, accept=False):
        """A corrected image, the prediction it replaces and the correction, all or none.

        `image` holds `data`, `width` and `height` (stored form); `prediction`
        holds `version`, `label`, `confidence` and `top`, or is None when no
        model answered. Returns (correction id, image id).
        """
        with self.transaction():
            image_id, _ = self.add_image(source=source, **image)
            prediction_id = None
            if prediction is not None:
                prediction_id = self.add_prediction(
                    image_id, prediction["version"], prediction["label"],
                    prediction["confidence"], prediction["top"])
            correction_id = self.add_correction(
                image_id, label, source, sender,
                predicted_label=prediction["label"] if prediction else None,
                prediction_id=prediction_id, accept=accept)
        return correction_id, image_id

    def prediction(self, prediction_id):
        rows = list(self.db.query("SELECT * FROM predictions WHERE id = ?", [prediction_id]))
        if not rows:
            return None
        row = dict(rows[0])
        row["top"] = json.loads(row["top"])
        return row

    def _check_rate(self, db, sender):
        stamp = utcnow()
        for limit, window, name in ((CORRECTIONS_PER_MINUTE, timedelta(minutes=1), "minute"),
                                    (CORRECTIONS_PER_DAY, timedelta(days=1), "day")):
            since = (stamp - window).isoformat(timespec="milliseconds")
            sent = db.execute("SELECT COUNT(*) FROM corrections WHERE sender = ? AND created_at > ?",
                              [sender, since]).fetchone()[0]
            if sent >= limit:
                raise RateLimited(f"Thank you, but that is enough corrections for now: at most "
                                  f"{limit} a {name} from one sender. Try again later.")

    def review_corrections(self, correction_ids, status, reviewer):
        """Accept or reject corrections, all or none; accepting labels their images."""
        if status not in ("accepted", "rejected"):
            raise SketchError("A review either accepts or rejects.")
        with self.transaction() as db:
            for correction_id in correction_ids:
                row = db.execute("SELECT image_id, label FROM corrections WHERE id = ?",
                                 [correction_id]).fetchone()
                if row is None:
                    raise SketchError(f"There is no correction {correction_id}.")
                db.execute("UPDATE corrections SET status = ?, reviewed_at = ? WHERE id = ?",
                           [status, now(), correction_id])
                if status == "accepted":
                    self._set_label(db, [row[0]], row[1], f"review:{reviewer}")

    def reject_sender(self, sender):
        """Reject every pending correction from one sender at once; returns how many."""
        with self.transaction() as db:
            return db.execute("UPDATE corrections SET status = 'rejected', reviewed_at = ?"
                              " WHERE sender = ? AND status = 'pending'", [now(), sender]).rowcount

    def corrections(self, status=None):
        where, args = ("WHERE status = ?", [status]) if status else ("", [])
        return list(self.db.query(
            f"SELECT * FROM corrections {where} ORDER BY created_at, id", args))


def _decode_version(row):
    row = dict(row)
    for key in ("classes", "config", "metrics"):
        row[key] = json.loads(row[key])
    row["live"] = bool(row["live"])
    return row


def _chunks(items, size):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _use_wal(conn):
    """Switch the file to WAL. The switch needs the file alone for a moment, and
    SQLite answers "locked" at once, without waiting the busy timeout, when
    another process holds it (several opening an old file together): retry."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
