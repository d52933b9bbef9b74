"""python -m model.predict IMAGE...: classify image files with the live model.

Prints one JSON line per image: {"path", "label", "confidence", "top", "unknown",
"unknown_score", "version"}, or {"path", "error"} for an image that cannot be
classified (exit status 1). Confidences are calibrated; "unknown" is true when
the image looks like none of the model's classes ("unknown_score" above 1;
null for a version trained before novelty was measured)."""
import argparse
import json
import sys

from db import Store
from db.cli import add_db_option, exit_on_error
from db.errors import SketchError
from model.images import read_file


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m model.predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    add_db_option(parser)
    parser.add_argument("--top", type=_positive, default=3, help="classes to list (default: 3)")
    args = parser.parse_args(argv)
    with exit_on_error():
        from model.classifier import Classifier
        classifier = Classifier(Store(args.db))
    status = 0
    for path in args.images:
        try:
            result = classifier.classify(read_file(path), k=args.top)
            print(json.dumps({"path": path, **result}), flush=True)
        except (SketchError, OSError) as error:
            print(json.dumps({"path": path, "error": str(error)}), flush=True)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
