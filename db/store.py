"""One SQLite file for images, labels, predictions, corrections, cached features
and model versions (connections and transactions: db.connection)."""
import hashlib
import json
import os
import unicodedata
from datetime import datetime, timedelta, timezone

from db.connection import Connection, in_chunks, placeholders
from db.errors import InvalidLabel, RateLimited, SketchError

DEFAULT_PATH = "data/sketches.db"
MAX_LABEL_LENGTH = 64
SOURCES = ("sketch", "webcam", "upload", "import", "generated")
SPLITS = ("train", "test")
# Corrections one sender may send (the owner's, accepted at once, are not counted).
CORRECTIONS_PER_MINUTE = 20
CORRECTIONS_PER_DAY = 500
# Corrections all senders together may send, the owner's aside: a sender's
# name is whatever a proxy header or a new session says, so the per-sender
# limits alone do not bound the pending queue (or the disk) against one
# client posing as many.
ALL_CORRECTIONS_PER_MINUTE = 200
ALL_CORRECTIONS_PER_DAY = 5000
# Longer sender names are cut: a name is a label for review, not storage.
MAX_SENDER_LENGTH = 200


def default_path():
    return os.environ.get("SKETCHLAB_DB") or DEFAULT_PATH


def utcnow():
    return datetime.now(timezone.utc)


def _sender(name):
    return str(name)[:MAX_SENDER_LENGTH]


def now():
    return utcnow().isoformat(timespec="milliseconds")


def clean_label(text):
    """The canonical form of a class name, or InvalidLabel saying why not.

    Unicode and punctuation are allowed (they are escaped wherever shown).
    Compatibility forms are folded (NFKC: a fullwidth "ｃｉｒｃｌｅ" is
    "circle"); control characters, invisible characters that would make a
    lookalike of another name, words mixing LOOKALIKE_SCRIPTS, blank names
    and names over MAX_LABEL_LENGTH are not.
    """
    if not isinstance(text, str):
        raise InvalidLabel("A class name must be text.")
    name = " ".join(unicodedata.normalize("NFKC", text).split())
    if not name:
        raise InvalidLabel("A class name cannot be empty.")
    if len(name) > MAX_LABEL_LENGTH:
        raise InvalidLabel(f"A class name can have at most {MAX_LABEL_LENGTH} characters.")
    if any(_invisible(c) for c in name):
        raise InvalidLabel("A class name cannot contain control or invisible formatting characters.")
    if any(_hidden_in(name, at) for at in range(len(name))):
        raise InvalidLabel(f"{name!r} holds an invisible character where no word needs one "
                           "(a joiner or variation selector beside a Latin, Greek or Cyrillic "
                           "letter, or a filler): it would look like another class.")
    for word in name.split(" "):
        scripts = sorted({_script(c) for c in word} & set(LOOKALIKE_SCRIPTS))
        if len(scripts) > 1:
            raise InvalidLabel(f"The word {word!r} mixes {' and '.join(s.title() for s in scripts)} "
                               "letters, which look alike: type it in one script.")
    return name


# Zero-width (non-)joiners build emoji sequences and Persian or Indic words.
_JOINERS = {"\u200c", "\u200d"}
# Variation selectors pick an emoji's or an ideograph's form; on a letter or
# digit they change nothing visible (a digit's makes a keycap before U+20E3).
_SELECTORS = {chr(c) for c in (*range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0))}
_KEYCAP = "\u20e3"
# Letters that show as nothing (Hangul fillers).
_FILLERS = {"\u115f", "\u1160", "\u3164", "\uffa0"}
# Scripts with letters that look alike (Cyrillic "с" and Latin "c", Greek "ο"
# and Latin "o"): one word may use only one of them (UTS #39's mixed-script
# check, by the script that starts each letter's Unicode name).
LOOKALIKE_SCRIPTS = ("LATIN", "GREEK", "CYRILLIC")


def _script(char):
    """The script of a letter, by its Unicode name ("" for other characters)."""
    if not unicodedata.category(char).startswith("L"):
        return ""
    return unicodedata.name(char, "").split(" ", 1)[0]


def _hidden_in(name, at):
    """Whether the character at `at` is invisible where it stands: a filler; a
    joiner that does not sit between two visible characters of scripts that
    need it; a variation selector that follows nothing it applies to."""
    char = name[at]
    before = name[at - 1] if at else " "
    after = name[at + 1] if at + 1 < len(name) else " "
    if char in _FILLERS:
        return True
    if char in _JOINERS:
        return any(c == " " or c in _JOINERS or _script(c) in LOOKALIKE_SCRIPTS
                   for c in (before, after))
    if char in _SELECTORS:
        if before.isascii():
            return not (before.isdigit() or before in "#*") or after != _KEYCAP
        return before in _SELECTORS or before in _JOINERS or _script(before) in LOOKALIKE_SCRIPTS
    return False


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


class Store(Connection):
    """The project's data, one method per kind of read or write."""

    def __init__(self, path=None):
        super().__init__(path or default_path())

    # -- images ------------------------------------------------------------

    def add_images(self, items):
        """Store normalized images, de-duplicated by sha256, in one transaction.

        Each item is a dict with `data` (normalized PNG bytes), `width`,
        `height`, `source`, and optionally `split`, `label` and `labeled_by`.
        Returns one `(image_id, created)` pair per item.
        """
        with self.transaction() as db:
            return [self._add_image(db, **item) for item in items]

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
        image_id = db.execute(
            "INSERT INTO images (sha256, data, width, height, source, split, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [digest, data, width, height, source, split, now()]).lastrowid
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
        for chunk in in_chunks(image_ids):
            for row in self.db.execute(
                    f"SELECT id, data FROM images WHERE id IN ({placeholders(chunk)})", chunk):
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
            for chunk in in_chunks(sorted(set(image_ids))):
                removed += db.execute(
                    f"DELETE FROM labels WHERE image_id IN ({placeholders(chunk)})",
                    chunk).rowcount
        return removed

    def rename_everywhere(self, class_id, old, new):
        """Give class `class_id` the name `new` and put it in place of `old`
        wherever a name is stored: corrections, predictions (label and
        probability list) and the versions' class lists and metrics."""
        with self.transaction() as db:
            db.execute("UPDATE classes SET name = ? WHERE id = ?", [new, class_id])
            db.execute("UPDATE corrections SET label = ? WHERE label = ?", [new, old])
            db.execute("UPDATE corrections SET predicted_label = ? WHERE predicted_label = ?",
                       [new, old])
            db.execute("UPDATE predictions SET label = ? WHERE label = ?", [new, old])
            _rename_in_tops(db, old, new)
            _rename_in_versions(db, old, new)

    def merge_into(self, source, target):
        """Move the labels and pending corrections of class `source` to class
        `target` ({id, name} each) and delete `source`; returns the labels moved."""
        with self.transaction() as db:
            moved = db.execute("UPDATE labels SET class_id = ?, created_at = ? WHERE class_id = ?",
                               [target["id"], now(), source["id"]]).rowcount
            db.execute("UPDATE corrections SET label = ? WHERE label = ? AND status = 'pending'",
                       [target["name"], source["name"]])
            db.execute("DELETE FROM classes WHERE id = ?", [source["id"]])
        return moved

    def remove_class(self, class_id):
        with self.transaction() as db:
            db.execute("DELETE FROM classes WHERE id = ?", [class_id])

    def classes(self):
        """Every class with its count of live labeled images, by name."""
        return list(self.db.query(
            "SELECT c.id, c.name, COUNT(i.id) AS images FROM classes c"
            " LEFT JOIN labels l ON l.class_id = c.id"
            " LEFT JOIN images i ON i.id = l.image_id AND i.deleted_at IS NULL"
            " GROUP BY c.id ORDER BY c.name"))

    def class_image_count(self, name):
        """Live labeled images of the class `name` (0 for a class that does not exist)."""
        return self.db.execute(
            "SELECT COUNT(i.id) FROM classes c JOIN labels l ON l.class_id = c.id"
            " JOIN images i ON i.id = l.image_id AND i.deleted_at IS NULL"
            " WHERE c.name = ?", [name]).fetchone()[0]

    def labeled_images(self, split):
        """[(image_id, class name)] of live labeled images in a split, by id."""
        return [(r[0], r[1]) for r in self.db.execute(
            "SELECT i.id, c.name FROM images i JOIN labels l ON l.image_id = i.id"
            " JOIN classes c ON c.id = l.class_id"
            " WHERE i.split = ? AND i.deleted_at IS NULL ORDER BY i.id", [split])]

    def set_split(self, image_ids, split):
        check_split(split)
        with self.transaction() as db:
            for chunk in in_chunks(image_ids):
                db.execute(f"UPDATE images SET split = ? WHERE id IN ({placeholders(chunk)})",
                           [split, *chunk])

    def set_deleted(self, image_ids, deleted):
        """Soft delete (`deleted` true) or restore images."""
        stamp = now() if deleted else None
        with self.transaction() as db:
            for chunk in in_chunks(image_ids):
                db.execute(f"UPDATE images SET deleted_at = ? WHERE id IN ({placeholders(chunk)})",
                           [stamp, *chunk])

    # -- features -----------------------------------------------------------

    def missing_features(self, image_ids, backbone, views):
        """The (image_id, view) pairs among `image_ids` x range(views) not cached."""
        have = set()
        for chunk in in_chunks(image_ids):
            have.update(self.db.execute(
                f"SELECT image_id, view FROM features WHERE backbone = ? AND view < ?"
                f" AND image_id IN ({placeholders(chunk)})", [backbone, views, *chunk]).fetchall())
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
        for chunk in in_chunks(image_ids):
            for image_id, view, vector in self.db.execute(
                    f"SELECT image_id, view, vector FROM features WHERE backbone = ? AND view < ?"
                    f" AND image_id IN ({placeholders(chunk)})", [backbone, views, *chunk]):
                found[(image_id, view)] = vector
        return found

    def count_features(self, backbone=None):
        where, args = ("", []) if backbone is None else (" WHERE backbone = ?", [backbone])
        return self.db.execute(f"SELECT COUNT(*) FROM features{where}", args).fetchone()[0]

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

    def add_prediction(self, image_id, model_version, label, confidence, top, judged=None):
        """`judged`: {"unknown", "unknown_score"} when the version judged
        whether the image is one of its classes."""
        with self.transaction() as db:
            return db.execute(
                _INSERT_PREDICTION, [image_id, model_version, label, confidence, json.dumps(top),
                                     *_judgement(judged), now()]).lastrowid

    def replace_predictions(self, version, rows):
        """Store predictions of `version`: rows of (image_id, [[label, p], ...] most
        likely first, {"unknown", "unknown_score"} or None). Older rows of the
        same image and version are replaced unless a correction refers to them."""
        stamp = now()
        with self.transaction() as db:
            for chunk in in_chunks(rows):
                ids = [image_id for image_id, _, _ in chunk]
                db.execute(
                    f"DELETE FROM predictions WHERE model_version = ?"
                    f" AND image_id IN ({placeholders(ids)}) AND id NOT IN"
                    " (SELECT prediction_id FROM corrections WHERE prediction_id IS NOT NULL)",
                    [version, *ids])
                db.conn.executemany(_INSERT_PREDICTION, [
                    (image_id, version, top[0][0], top[0][1], json.dumps(top),
                     *_judgement(judged), stamp)
                    for image_id, top, judged in chunk])

    def add_correction(self, image_id, label, source, sender, predicted_label=None,
                       prediction_id=None, accept=False):
        """Record that `sender` says the image shows `label`. Accepted ones label the image."""
        label = clean_label(label)
        sender = _sender(sender)
        status = "accepted" if accept else "pending"
        with self.transaction() as db:
            if not accept:
                self._check_rate(db, sender)
            stamp = now()
            # Reviewed the moment it was made: accepted on arrival (the owner's).
            correction = db.execute(
                "INSERT INTO corrections (image_id, prediction_id, predicted_label, label,"
                " source, sender, status, created_at, reviewed_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [image_id, prediction_id, predicted_label, label, source, sender, status,
                 stamp, stamp if accept else None]).lastrowid
            if accept:
                self._set_label(db, [image_id], label, f"correction:{sender}")
        return correction

    def record_correction(self, image, label, source, sender, prediction=None, accept=False):
        """A corrected image, the prediction it replaces and the correction, all or none.

        `image` holds `data`, `width` and `height` (stored form); `prediction`
        holds `version`, `label`, `confidence` and `top`, or is None when no
        model answered. Returns (correction id, image id, whether it is new):
        the same image corrected to the same label by the same sender, and not
        rejected, is stored once (a double click, a resent request).
        """
        with self.transaction() as db:
            image_id, _ = self.add_image(source=source, **image)
            same = db.execute(
                "SELECT id FROM corrections WHERE image_id = ? AND label = ? AND sender = ?"
                " AND status != 'rejected'",
                [image_id, clean_label(label), _sender(sender)]).fetchone()
            if same:
                return same[0], image_id, False
            prediction_id = None
            if prediction is not None:
                prediction_id = self.add_prediction(
                    image_id, prediction["version"], prediction["label"],
                    prediction["confidence"], prediction["top"], judged=prediction)
            correction_id = self.add_correction(
                image_id, label, source, sender,
                predicted_label=prediction["label"] if prediction else None,
                prediction_id=prediction_id, accept=accept)
        return correction_id, image_id, True

    def prediction(self, prediction_id):
        rows = list(self.db.query("SELECT * FROM predictions WHERE id = ?", [prediction_id]))
        for row in rows:
            row["top"] = json.loads(row["top"])
        return rows[0] if rows else None

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
        for limit, window, name in ((ALL_CORRECTIONS_PER_MINUTE, timedelta(minutes=1), "minute"),
                                    (ALL_CORRECTIONS_PER_DAY, timedelta(days=1), "day")):
            since = (stamp - window).isoformat(timespec="milliseconds")
            sent = db.execute(
                "SELECT COUNT(*) FROM corrections WHERE created_at > ?"
                " AND (reviewed_at IS NULL OR reviewed_at != created_at)", [since]).fetchone()[0]
            if sent >= limit:
                raise RateLimited(f"Thank you, but the app has taken all the corrections it "
                                  f"takes in a {name} ({limit}) until they are reviewed. Try "
                                  f"again later.")

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


def _judgement(judged):
    """(unknown, unknown_score) columns of a judgement (None: not judged)."""
    if not judged or judged.get("unknown_score") is None:
        return None, None
    return int(bool(judged["unknown"])), float(judged["unknown_score"])


_INSERT_PREDICTION = ("INSERT INTO predictions (image_id, model_version, label, confidence, top,"
                      " unknown, unknown_score, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")


def _rename_in_tops(db, old, new):
    """The stored probability lists ([[label, p], ...]) that name `old`."""
    rows = db.execute("SELECT id, top FROM predictions WHERE EXISTS (SELECT 1 FROM "
                      "json_each(top) WHERE json_extract(value, '$[0]') = ?)", [old]).fetchall()
    db.conn.executemany("UPDATE predictions SET top = ? WHERE id = ?", [
        (json.dumps([[new if name == old else name, p] for name, p in json.loads(top)]), row_id)
        for row_id, top in rows])


def _rename_in_versions(db, old, new):
    """The model versions' class lists and the names in their metrics."""
    def swap(names):
        return [new if name == old else name for name in names]
    rows = db.execute("SELECT id, classes, metrics FROM model_versions WHERE EXISTS "
                      "(SELECT 1 FROM json_each(classes) WHERE value = ?)", [old]).fetchall()
    updates = []
    for row_id, classes, metrics in rows:
        metrics = json.loads(metrics)
        if "per_class" in metrics:
            metrics["per_class"] = dict(zip(swap(metrics["per_class"]),
                                            metrics["per_class"].values()))
        if "confusion" in metrics:
            metrics["confusion"]["labels"] = swap(metrics["confusion"]["labels"])
        updates.append((json.dumps(swap(json.loads(classes))), json.dumps(metrics), row_id))
    db.conn.executemany("UPDATE model_versions SET classes = ?, metrics = ? WHERE id = ?",
                        updates)


def _decode_version(row):
    row = dict(row)
    for key in ("classes", "config", "metrics"):
        row[key] = json.loads(row[key])
    row["live"] = bool(row["live"])
    return row

