"""The labeler's queries: the paginated grid, batch edits, classes, the review
queue, stored predictions and the dataset export. Every function takes a
Store; its edits check what the labeler allows, then write through the Store's
methods in one transaction.

Predictions: the labeler stores one row per image per model version (the
full probability list, most likely first, in `top`). The demo stores rows in
the same table when someone sends a correction, so a reader always takes the
newest row of an (image, version) pair.
"""
import json

from db.connection import in_chunks, placeholders
from db.store import check_split, clean_label
from db.errors import ClassConflict, NotFound, SketchError

GRID_SORTS = ("newest", "oldest", "least-confident", "top-losses")
GRID_STATUSES = ("all", "labeled", "unlabeled", "misclassified", "unknown", "deleted")
UNLABELED = "none"
# Probabilities kept per prediction row: enough for the true class of any image
# in projects of this size; a true class beyond them counts as probability 0.
MAX_STORED_PROBABILITIES = 100


# -- the grid ------------------------------------------------------------------

def _prediction_join(version):
    if version is None:
        return "LEFT JOIN predictions p ON 0", []
    return ("LEFT JOIN predictions p ON p.id = (SELECT MAX(q.id) FROM predictions q"
            " WHERE q.image_id = i.id AND q.model_version = ?)", [version])


def _grid_where(filters, sort):
    """(WHERE clause, its arguments, the tables it reads) for the grid filters
    (all optional) and the rows a sort can rank."""
    conditions, args, tables = [], [], set()

    def add(condition, *values, reads=()):
        conditions.append(condition)
        args.extend(values)
        tables.update(reads)
    status = filters.get("status") or "all"
    add("i.deleted_at IS NOT NULL" if status == "deleted" else "i.deleted_at IS NULL")
    if status in ("labeled", "misclassified") or sort == "top-losses":
        add("l.class_id IS NOT NULL", reads={"labels"})
    if status == "unlabeled":
        add("l.class_id IS NULL", reads={"labels"})
    if filters.get("label") == UNLABELED:
        add("l.class_id IS NULL", reads={"labels"})
    elif filters.get("label"):
        add("l.class_id = ?", int(filters["label"]), reads={"labels"})
    if status == "misclassified":
        add("p.label IS NOT NULL AND p.label != c.name", reads={"labels", "classes", "predictions"})
    if status == "unknown":  # the live version judges them none of its classes
        add("p.unknown = 1", reads={"predictions"})
    if sort == "top-losses":
        add("p.id IS NOT NULL", reads={"predictions"})
    if filters.get("predicted"):
        add("p.label = ?", filters["predicted"], reads={"predictions"})
    for column in ("source", "split"):
        if filters.get(column):
            add(f"i.{column} = ?", filters[column])
    return " AND ".join(conditions), args, tables


# The probability the live model gives an image's true class.
_TRUE_PROBABILITY = ("COALESCE((SELECT json_extract(t.value, '$[1]') FROM json_each(p.top) t"
                     " WHERE json_extract(t.value, '$[0]') = c.name), 0)")
# Each sort's ORDER BY and the tables it reads.
_GRID_ORDERS = {
    "newest": ("i.id DESC", set()),
    "oldest": ("i.id ASC", set()),
    "least-confident": ("p.confidence IS NULL, p.confidence ASC, i.id DESC", {"predictions"}),
    "top-losses": (f"{_TRUE_PROBABILITY} ASC, i.id DESC", {"labels", "classes", "predictions"}),
}


def _grid_from(tables, version):
    """FROM images with only the joins `tables` needs (each LEFT JOIN matches at
    most one row, so a join never changes which images are listed)."""
    sql, args = " FROM images i", []
    if tables & {"labels", "classes"}:
        sql += " LEFT JOIN labels l ON l.image_id = i.id"
    if "classes" in tables:
        sql += " LEFT JOIN classes c ON c.id = l.class_id"
    if "predictions" in tables:
        join, args = _prediction_join(version)
        sql += f" {join}"
    return sql, args


def grid(store, filters, sort, offset, limit, version):
    """One page of the grid and the total count: (rows, total).

    Filters: label (class id or UNLABELED), predicted (class name), source,
    split, status (GRID_STATUSES). Sorts: GRID_SORTS; "least-confident" puts
    images without a prediction last, "top-losses" lists only labeled images
    with a prediction, the ones whose true class got the least probability first.

    The page is chosen on ids alone, joining only the tables the filters and
    the sort read (the count only those the filters read), then its rows are
    read by id: OFFSET skips bare ids.
    """
    if sort not in GRID_SORTS:
        raise SketchError(f"Unknown sort {sort!r}; expected one of {', '.join(GRID_SORTS)}.")
    where, args, filtered_by = _grid_where(filters, sort)
    order, ranked_by = _GRID_ORDERS[sort]
    count_from, count_args = _grid_from(filtered_by, version)
    total = store.db.execute(f"SELECT COUNT(*){count_from} WHERE {where}",
                             [*count_args, *args]).fetchone()[0]
    page_from, page_args = _grid_from(filtered_by | ranked_by, version)
    ids = [r[0] for r in store.db.execute(
        f"SELECT i.id{page_from} WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
        [*page_args, *args, limit, offset])]
    return images_by_id(store, ids, version), total


def _true_probability(row):
    if row["label"] is None or not row["top"]:
        return None
    return next((p for name, p in row["top"] if name == row["label"]), 0.0)


def images_by_id(store, image_ids, version):
    """Grid rows for the given ids (deleted ones included), in the given order."""
    join, join_args = _prediction_join(version)
    found = {}
    for chunk in in_chunks(image_ids):
        for row in store.db.query(
                f"SELECT i.id, i.source, i.split, i.width, i.height, i.deleted_at, l.class_id,"
                f" c.name AS label, p.label AS predicted, p.confidence, p.top, p.unknown,"
                f" p.unknown_score FROM images i"
                f" LEFT JOIN labels l ON l.image_id = i.id LEFT JOIN classes c ON c.id = l.class_id"
                f" {join} WHERE i.id IN ({placeholders(chunk)})", [*join_args, *chunk]):
            row["top"] = json.loads(row["top"]) if row["top"] else []
            row["true_probability"] = _true_probability(row)
            found[row["id"]] = row
    return [found[i] for i in image_ids if i in found]


def version_classes(store, version):
    """The class names a version was trained on (what it can predict)."""
    if version is None:
        return []
    row = store.db.execute("SELECT classes FROM model_versions WHERE id = ?", [version]).fetchone()
    return sorted(json.loads(row[0])) if row else []


def image_row(store, image_id):
    """id, source, split, deleted_at, label of one image (no pixels), or NotFound."""
    rows = list(store.db.query(
        "SELECT i.id, i.sha256, i.source, i.split, i.width, i.height, i.created_at,"
        " i.deleted_at, c.name AS label, l.labeled_by FROM images i"
        " LEFT JOIN labels l ON l.image_id = i.id LEFT JOIN classes c ON c.id = l.class_id"
        " WHERE i.id = ?", [image_id]))
    if not rows:
        raise NotFound(f"There is no image {image_id}.")
    return rows[0]


def current_labels(store, image_ids):
    """{image id: class name} of those of `image_ids` that are labeled and
    not deleted now."""
    found = {}
    for chunk in in_chunks(list(image_ids)):
        found.update(store.db.execute(
            "SELECT i.id, c.name FROM images i JOIN labels l ON l.image_id = i.id"
            " JOIN classes c ON c.id = l.class_id WHERE i.deleted_at IS NULL"
            f" AND i.id IN ({placeholders(chunk)})", chunk).fetchall())
    return found


def image_png(store, image_id):
    """(sha256, PNG bytes) of a stored image, or NotFound."""
    row = store.db.execute("SELECT sha256, data FROM images WHERE id = ?", [image_id]).fetchone()
    if row is None:
        raise NotFound(f"There is no image {image_id}.")
    return row[0], row[1]


# -- batch edits -----------------------------------------------------------------

def _existing(db, image_ids, deleted=False):
    found = []
    state = "IS NOT NULL" if deleted else "IS NULL"
    for chunk in in_chunks(sorted(set(image_ids))):
        found += [r[0] for r in db.execute(
            f"SELECT id FROM images WHERE deleted_at {state} AND id IN ({placeholders(chunk)})",
            chunk)]
    return found


def label_images(store, image_ids, label, labeled_by):
    """Label the live images among `image_ids` with `label` (created when new),
    all in one transaction. Returns how many were labeled."""
    name = clean_label(label)
    with store.transaction() as db:
        ids = _existing(db, image_ids)
        if ids:
            store.set_label(ids, name, labeled_by)
    return len(ids)


def move_to_split(store, image_ids, split):
    check_split(split)
    with store.transaction() as db:
        ids = _existing(db, image_ids)
        store.set_split(ids, split)
    return len(ids)


def delete_images(store, image_ids):
    """Soft delete: the images leave every view and training until restored."""
    with store.transaction() as db:
        ids = _existing(db, image_ids)
        store.set_deleted(ids, True)
    return ids


def restore_images(store, image_ids):
    with store.transaction() as db:
        ids = _existing(db, image_ids, deleted=True)
        store.set_deleted(ids, False)
    return ids


def live_image_ids(store):
    return [r[0] for r in store.db.execute(
        "SELECT id FROM images WHERE deleted_at IS NULL ORDER BY id")]


def counts(store):
    """Totals of live images: all, labeled, in the test split, and deleted ones."""
    row = store.db.execute(
        "SELECT COUNT(*), SUM(l.image_id IS NOT NULL), SUM(i.split = 'test')"
        " FROM images i LEFT JOIN labels l ON l.image_id = i.id WHERE i.deleted_at IS NULL"
    ).fetchone()
    deleted = store.db.execute(
        "SELECT COUNT(*) FROM images WHERE deleted_at IS NOT NULL").fetchone()[0]
    return {"images": row[0], "labeled": row[1] or 0, "test": row[2] or 0, "deleted": deleted}


def pending_count(store, sender=None):
    """Pending corrections (shown on every page: an index lookup), or those
    of one sender."""
    where, args = (" AND sender = ?", [sender]) if sender is not None else ("", [])
    return store.db.execute(
        f"SELECT COUNT(*) FROM corrections WHERE status = 'pending'{where}", args).fetchone()[0]


def class_names(store):
    """[{id, name}] of every class by name, without counting images."""
    return list(store.db.query("SELECT id, name FROM classes ORDER BY name"))


# -- classes --------------------------------------------------------------------------

def class_summary(store):
    """Every class with live train/test counts and deleted-image count, by name."""
    return list(store.db.query(
        "SELECT c.id, c.name, c.created_at,"
        " COALESCE(SUM(i.id IS NOT NULL AND i.deleted_at IS NULL), 0) AS images,"
        " COALESCE(SUM(i.deleted_at IS NULL AND i.split = 'train'), 0) AS train,"
        " COALESCE(SUM(i.deleted_at IS NULL AND i.split = 'test'), 0) AS test,"
        " COALESCE(SUM(i.deleted_at IS NOT NULL), 0) AS deleted"
        " FROM classes c LEFT JOIN labels l ON l.class_id = c.id"
        " LEFT JOIN images i ON i.id = l.image_id GROUP BY c.id ORDER BY c.name"))


def recent_examples(store, per_class):
    """{class name: [image ids]}: the newest `per_class` live images of each
    class, newest first (one query however many classes)."""
    recent = {}
    for name, image_id in store.db.execute(
            "SELECT name, image_id FROM (SELECT c.name, i.id AS image_id, ROW_NUMBER() OVER"
            " (PARTITION BY c.id ORDER BY i.id DESC) AS rank FROM classes c"
            " JOIN labels l ON l.class_id = c.id JOIN images i ON i.id = l.image_id"
            " WHERE i.deleted_at IS NULL) WHERE rank <= ? ORDER BY name, image_id DESC",
            [per_class]):
        recent.setdefault(name, []).append(image_id)
    return recent


def pending_ids(store, limit):
    """Ids of the oldest `limit` pending corrections."""
    return [r[0] for r in store.db.execute(
        "SELECT id FROM corrections WHERE status = 'pending' ORDER BY created_at, id LIMIT ?",
        [limit])]


def get_class(store, class_id):
    rows = list(store.db.query("SELECT id, name FROM classes WHERE id = ?", [class_id]))
    if not rows:
        raise NotFound(f"There is no class {class_id}.")
    return rows[0]


def create_class(store, name):
    """(class id, its cleaned name, created?)"""
    name = clean_label(name)
    with store.transaction() as db:
        row = db.execute("SELECT id FROM classes WHERE name = ?", [name]).fetchone()
        if row:
            return row[0], name, False
        return store.ensure_class(name), name, True


def rename_class(store, class_id, new_name):
    """Rename a class. A rename corrects a name, the class stays the same: model
    versions, their stored predictions and the corrections that name it take
    the new name in the same transaction (else every image of the class would
    look misclassified to the grid until the next retrain). Returns (old name,
    new name)."""
    new_name = clean_label(new_name)
    with store.transaction() as db:
        old = get_class(store, class_id)["name"]
        if new_name == old:
            return old, new_name
        other = db.execute("SELECT id FROM classes WHERE name = ?", [new_name]).fetchone()
        if other:
            raise ClassConflict(f"A class named {new_name!r} already exists: merge into it "
                                "instead of renaming.")
        # A class merged away or deleted keeps its name in the versions trained with it.
        if db.execute("SELECT 1 FROM model_versions WHERE EXISTS (SELECT 1 FROM json_each(classes)"
                      " WHERE value = ?) AND EXISTS (SELECT 1 FROM json_each(classes)"
                      " WHERE value = ?)", [old, new_name]).fetchone():
            raise ClassConflict(f"A model version knows both {old!r} and {new_name!r} (a class "
                                f"merged or deleted since): pick another name.")
        store.rename_everywhere(class_id, old, new_name)
    return old, new_name


def merge_classes(store, source_id, target_id):
    """Move every label of `source_id` to `target_id` and delete `source_id`.
    Returns (source name, target name, how many labels moved)."""
    if int(source_id) == int(target_id):
        raise ClassConflict("A class cannot be merged into itself.")
    with store.transaction():
        source = get_class(store, source_id)
        target = get_class(store, target_id)
        moved = store.merge_into(source, target)
    return source["name"], target["name"], moved


def delete_class(store, class_id, forget_deleted=False):
    """Delete a class without images. Deleted images count (restoring one
    must not leave it without its class), unless `forget_deleted`: then they
    lose their label with the class and a restored one comes back unlabeled
    (the Teach tab, which cannot restore or relabel, deletes a class whose
    examples were all taken back)."""
    with store.transaction() as db:
        name = get_class(store, class_id)["name"]
        live, deleted = db.execute(
            "SELECT SUM(i.deleted_at IS NULL), SUM(i.deleted_at IS NOT NULL) FROM labels l"
            " JOIN images i ON i.id = l.image_id WHERE l.class_id = ?", [class_id]).fetchone()
        if live or (deleted and not forget_deleted):
            raise ClassConflict(
                f"The class {name!r} is not empty: it labels {live or 0} image(s)"
                + (f" and {deleted} deleted image(s)" if deleted else "")
                + ". Relabel them or merge the class into another one first.")
        db.execute("DELETE FROM labels WHERE class_id = ?", [class_id])
        store.remove_class(class_id)
    return name


# -- the review queue -----------------------------------------------------------------

def correction_queue(store, status, offset, limit):
    """(rows, total) of corrections with this status, oldest first, each with
    how many corrections its sender sent in all and how many are pending."""
    total = store.db.execute("SELECT COUNT(*) FROM corrections WHERE status = ?",
                             [status]).fetchone()[0]
    rows = list(store.db.query(
        "SELECT c.id, c.image_id, c.predicted_label, c.label, c.source, c.sender, c.status,"
        " c.created_at, c.reviewed_at, i.deleted_at,"
        " (SELECT COUNT(*) FROM corrections s WHERE s.sender = c.sender) AS sender_total,"
        " (SELECT COUNT(*) FROM corrections s WHERE s.sender = c.sender"
        "  AND s.status = 'pending') AS sender_pending"
        " FROM corrections c JOIN images i ON i.id = c.image_id WHERE c.status = ?"
        " ORDER BY c.created_at, c.id LIMIT ? OFFSET ?", [status, limit, offset]))
    return rows, total


# -- predictions ----------------------------------------------------------------------

def put_predictions(store, version, rows):
    """Store.replace_predictions for rows of (image_id, top) or (image_id,
    top, judgement), keeping the MAX_STORED_PROBABILITIES most likely
    classes of each image."""
    store.replace_predictions(version, [
        (image_id, top[:MAX_STORED_PROBABILITIES], judged[0] if judged else None)
        for image_id, top, *judged in rows])


def unpredicted_image_ids(store, version):
    """Live images without a prediction of `version`."""
    return [r[0] for r in store.db.execute(
        "SELECT i.id FROM images i WHERE i.deleted_at IS NULL AND NOT EXISTS"
        " (SELECT 1 FROM predictions p WHERE p.image_id = i.id AND p.model_version = ?)"
        " ORDER BY i.id", [version])]


# -- export ---------------------------------------------------------------------------

def labeled_for_export(store):
    """(image id, split, class name) of every live labeled image, by class then id."""
    return [tuple(r) for r in store.db.execute(
        "SELECT i.id, i.split, c.name FROM images i JOIN labels l ON l.image_id = i.id"
        " JOIN classes c ON c.id = l.class_id WHERE i.deleted_at IS NULL ORDER BY c.name, i.id")]

