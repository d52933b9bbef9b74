"""python -m labeler.importer DIR: import a folder-per-class tree of images.

Layouts (as Keras image_dataset_from_directory reads them):
  DIR/<class>/*.png|jpg|...                  everything goes to the train split
  DIR/train/<class>/... and DIR/test/<class>/... the split comes from the folder
Bad files are reported and skipped; images already stored (same pixels) are
not imported twice."""
import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from db import Store, clean_label, default_path
from db.errors import SketchError
from model.images import read_file, stored_form

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp"}
IMPORT_BATCH = 200


def find_images(root):
    """[(path, class name, split)] of the image files in a folder-per-class tree."""
    root = Path(root)
    if not root.is_dir():
        raise SketchError(f"{root} is not a folder.")
    splits = [s for s in ("train", "test") if (root / s).is_dir()]
    tops = [(root / s, s) for s in splits] if splits else [(root, "train")]
    found = []
    for top, split in tops:
        for class_dir in sorted(p for p in top.iterdir() if p.is_dir() and not p.name.startswith(".")):
            found.extend((path, class_dir.name, split) for path in sorted(class_dir.rglob("*"))
                         if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)
    return found


def import_tree(store, root, source="import", show_bar=False):
    """Import a tree; returns {"imported", "duplicates", "errors": [[path, message]]}."""
    files = find_images(root)
    summary = {"imported": 0, "duplicates": 0, "errors": []}
    batch = []
    for path, label, split in tqdm(files, desc="import", unit="img", file=sys.stderr,
                                   disable=not show_bar):
        try:
            data, width, height = stored_form(read_file(path))
            batch.append({"data": data, "width": width, "height": height, "source": source,
                          "split": split, "label": clean_label(label), "labeled_by": source})
        except (SketchError, OSError) as error:
            summary["errors"].append([str(path), str(error)])
        if len(batch) >= IMPORT_BATCH:
            _commit(store, batch, summary)
    _commit(store, batch, summary)
    return summary


def _commit(store, batch, summary):
    for _, created in store.add_images(batch):
        summary["imported" if created else "duplicates"] += 1
    batch.clear()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m labeler.importer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", metavar="DIR")
    parser.add_argument("--db", default=None,
                        help=f"SQLite file (default: $SKETCHLAB_DB or {default_path()})")
    args = parser.parse_args(argv)
    try:
        summary = import_tree(Store(args.db), args.folder, show_bar=True)
    except SketchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path, message in summary["errors"]:
        print(f"skipped {path}: {message}", file=sys.stderr)
    print(json.dumps({k: (len(v) if k == "errors" else v) for k, v in summary.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
