"""One way in for images: a folder tree, zips and files uploaded in the
labeler, the starter set, and examples taught in the demo all become stored
images here, through one layout rule and one source vocabulary.

Layouts (as Keras image_dataset_from_directory reads them), for folders and
zips alike: `<class>/...` gives the class, `train|test/<class>/...` the split
and the class. Bad files, and an upload's images past its pixel budget
(MAX_UPLOAD_PIXELS), are reported and skipped; images already stored (same
pixels) are not stored twice.
"""
import io
import sys
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from db.errors import SketchError
from db.store import SOURCES, SPLITS, check_split, clean_label
from model.errors import BadImage
from model.images import (MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, decode, header_size, normalize,
                          read_file, require_ink, stored_form)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp"}
# Images stored per transaction during a folder import.
IMPORT_BATCH = 200
# What uploads may say they came from (folder imports are "import").
UPLOAD_SOURCES = ("upload", "webcam")
# What a correction sent from the demo may say it came from.
CORRECTION_SOURCES = ("sketch", "webcam", "upload")
# A zip: its files and their total uncompressed size (zip bombs stop here).
MAX_ZIP_MEMBERS = 5000
MAX_ZIP_BYTES = 500 * 1024 * 1024
# Pixels one upload may decode: its images and the members of its zips
# together, each counted from its header before it is decoded (a PNG of
# 7000x7000 pixels compresses to a few KB and takes about a second of CPU).
# What does not fit is skipped with the reason. Five images of
# MAX_IMAGE_PIXELS; a webcam burst's upload (50 frames) at 1080p is 104 million.
MAX_UPLOAD_PIXELS = 250_000_000
# One taught example in TEST_EVERY goes to the test split, so a new class is measured.
TEST_EVERY = 5


class TooLarge(SketchError):
    """A request over one of the upload limits."""
    status = 413


class PixelBudget:
    """What is left of MAX_UPLOAD_PIXELS for one upload."""

    def __init__(self):
        self.left = MAX_UPLOAD_PIXELS

    def spend(self, data):
        """`data`, once its pixels are taken from the budget; TooLarge when
        they do not fit. An unreadable header, or one over MAX_IMAGE_PIXELS,
        costs nothing: decode() refuses that file without decoding it."""
        pixels = _header_pixels(data)
        if pixels > self.left:
            raise TooLarge(f"not decoded: one upload may hold at most {MAX_UPLOAD_PIXELS:,} "
                           "pixels in all; upload the rest in parts.")
        self.left -= pixels
        return data


def _header_pixels(data):
    """Width x height as an image file's header says, or 0 when there is no
    readable header or decode() refuses the size."""
    size = header_size(data)
    if size is None or size[0] * size[1] > MAX_IMAGE_PIXELS:
        return 0
    return size[0] * size[1]


def check_source(source, allowed):
    """`source` when it is one of `allowed`, else SketchError naming them."""
    if source not in allowed or source not in SOURCES:
        raise SketchError(f"Unknown source {source!r}; expected {' or '.join(allowed)}.")
    return source


def layout(parts):
    """(split or None, class or None) of a file at `parts` (folders, then the
    file name) below the root of a folder or zip."""
    if parts[0] in SPLITS:
        return (parts[0], parts[1]) if len(parts) >= 3 else (parts[0], None)
    return None, (parts[0] if len(parts) >= 2 else None)


def _hidden(parts):
    return any(p in ("..", "") or p.startswith(".") for p in parts) or parts[0] == "__MACOSX"


def _is_image(name):
    return PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES


# -- folders --------------------------------------------------------------------------

def find_images(root):
    """[(path, class name, split)] of the image files in a folder-per-class tree
    (files outside a class folder are left out)."""
    root = Path(root)
    if not root.is_dir():
        raise SketchError(f"{root} is not a folder.")
    found = []
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if not path.is_file() or _hidden(parts) or not _is_image(path.name):
            continue
        split, label = layout(parts)
        if label is not None:
            found.append((path, label, split or "train"))
    return found


def import_tree(store, root, source="import", show_bar=False):
    """Import a tree; returns {"imported", "duplicates", "errors": [[path, message]], "ids"}."""
    files = find_images(root)
    summary = {"imported": 0, "duplicates": 0, "errors": [], "ids": []}
    batch = []
    for path, label, split in tqdm(files, desc="import", unit="img", file=sys.stderr,
                                   disable=not show_bar):
        try:
            batch.append(_item(read_file(path), split, clean_label(label), source, source))
        except (SketchError, OSError) as error:
            summary["errors"].append([str(path), str(error)])
        if len(batch) >= IMPORT_BATCH:
            _commit(store, batch, summary)
    _commit(store, batch, summary)
    return summary


def _commit(store, batch, summary):
    for image_id, created in store.add_images(batch):
        summary["imported" if created else "duplicates"] += 1
        summary["ids"].append(image_id)
    batch.clear()


def _item(image, split, label, source, labeled_by):
    """A Store.add_images item: the image's stored form and where it goes."""
    data, width, height = stored_form(image)
    item = {"data": data, "width": width, "height": height, "split": split, "source": source}
    if label is not None:
        item.update(label=label, labeled_by=labeled_by)
    return item


# -- uploads and zips -------------------------------------------------------------------

def is_zip(name, data):
    return name.lower().endswith(".zip") or data[:4] == b"PK\x03\x04"


def zip_entries(data, default_label, default_split, budget=None):
    """(entries, errors) of a zip: entries are (image, split, label), read by the
    folder layout rule; images at the top get the chosen class. One wrapping
    folder (as zipping a folder makes) is looked through when it holds
    sub-folders. Members are decoded within `budget` (a PixelBudget, by
    default one of its own) and kept in their stored size."""
    budget = budget or PixelBudget()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as error:
        raise BadImage(f"Not a readable zip file: {error}.") from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if len(members) > MAX_ZIP_MEMBERS:
            raise TooLarge(f"The zip holds {len(members)} files; at most {MAX_ZIP_MEMBERS} "
                           "are accepted at once.")
        if sum(m.file_size for m in members) > MAX_ZIP_BYTES:
            raise TooLarge(f"The zip unpacks to more than {MAX_ZIP_BYTES // 2**20} MB.")
        paths = []
        for member in members:
            parts = PurePosixPath(member.filename.replace("\\", "/")).parts
            if (not parts or _hidden(parts) or member.filename.startswith("/")
                    or not _is_image(parts[-1])):
                continue
            paths.append((member, list(parts)))
        tops = {tuple(parts[:1]) for _, parts in paths}
        if (len(tops) == 1 and any(len(parts) >= 3 for _, parts in paths)
                and paths[0][1][0] not in SPLITS):
            paths = [(m, parts[1:]) for m, parts in paths]
        entries, errors = [], []
        for member, parts in paths:
            split, label = layout(parts)
            split, label = split or default_split, label or default_label
            if member.file_size > MAX_IMAGE_BYTES:
                errors.append((member.filename, f"larger than {MAX_IMAGE_BYTES // 2**20} MB"))
                continue
            try:
                if label is not None:
                    label = clean_label(label)
                image = decode(budget.spend(archive.read(member)))
                entries.append((normalize(image), split, label))
            except SketchError as error:
                errors.append((member.filename, str(error)))
            # zipfile's own errors for one member: a corrupt one (BadZipFile, a
            # zlib error), an encrypted one (RuntimeError), an unknown
            # compression method (NotImplementedError). The others still count.
            except (zipfile.BadZipFile, zlib.error, EOFError) as error:
                errors.append((member.filename, f"corrupt in the zip ({error})"))
            except NotImplementedError as error:  # before RuntimeError, its base class
                errors.append((member.filename, f"compressed in a way not supported ({error})"))
            except RuntimeError:
                errors.append((member.filename, "encrypted: unzip it with its password first"))
        return entries, errors


def store_uploads(store, blobs, label, split, source, labeled_by):
    """Store uploaded files (images and zips of images): `blobs` are (file name,
    bytes). Returns {"stored", "duplicates", "ids", "errors": [(name, message)]};
    BadImage when nothing could be stored."""
    check_source(source, UPLOAD_SOURCES)
    check_split(split)
    if not blobs:
        raise BadImage("Choose at least one image or zip file.")
    items, errors = [], []
    budget = PixelBudget()
    for name, data in blobs:
        if is_zip(name, data):
            entries, problems = zip_entries(data, label, split, budget)
            errors += problems
        else:
            try:
                entries = [(decode(budget.spend(data)), split, label)]
            except SketchError as error:
                errors.append((name, str(error)))
                continue
        for image, image_split, image_label in entries:
            try:
                items.append(_item(image, image_split, image_label, source, labeled_by))
            except SketchError as error:
                errors.append((name, str(error)))
    if not items:
        raise BadImage("No image could be stored: " + "; ".join(
            f"{name}: {message}" for name, message in errors[:10]))
    results = store.add_images(items)
    return {"stored": sum(created for _, created in results),
            "duplicates": sum(not created for _, created in results),
            "ids": [image_id for image_id, _ in results], "errors": errors}


# -- the starter set and taught examples -------------------------------------------------

def store_generated(store, drawings, labeled_by):
    """Store generated drawings: (image, split, label) triples. Returns how many were new."""
    items = [_item(image, split, label, "generated", labeled_by)
             for image, split, label in drawings]
    return sum(created for _, created in store.add_images(items))


def add_example(store, image, label, source, labeled_by):
    """One labeled example taught in the demo: every TEST_EVERY-th of a class
    goes to the test split. Returns {"id", "label" (cleaned), "split",
    "created", "total": images of the class now}."""
    label = clean_label(label or "")
    require_ink(image)
    before = store.class_image_count(label)
    split = "test" if (before + 1) % TEST_EVERY == 0 else "train"
    image_id, created = store.add_image(**_item(image, split, label, source, labeled_by))
    if not created:
        store.set_label([image_id], label, labeled_by)
    return {"id": image_id, "label": label, "split": split, "created": created,
            "total": store.class_image_count(label)}
