"""python -m labeler.importer DIR: import a folder-per-class tree of images.

Layouts (as Keras image_dataset_from_directory reads them):
  DIR/<class>/*.png|jpg|...                  everything goes to the train split
  DIR/train/<class>/... and DIR/test/<class>/... the split comes from the folder
Bad files are reported and skipped; images already stored (same pixels) are
not imported twice."""
import argparse
import json
import sys

from db import Store
from db.cli import add_db_option, exit_on_error
from service.ingest import import_tree


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m labeler.importer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", metavar="DIR")
    add_db_option(parser)
    args = parser.parse_args(argv)
    with exit_on_error():
        summary = import_tree(Store(args.db), args.folder, show_bar=True)
    for path, message in summary["errors"]:
        print(f"skipped {path}: {message}", file=sys.stderr)
    print(json.dumps({"imported": summary["imported"], "duplicates": summary["duplicates"],
                      "errors": len(summary["errors"])}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
