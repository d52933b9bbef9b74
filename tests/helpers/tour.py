"""python -m tests.helpers.tour: copy the screenshots the browser tests made
(artifacts/) into docs/tour/ for the README's tour, shrunk to small PNGs.
Run it after `make test`."""
import argparse
import sys

from PIL import Image

from tests.helpers.common import ARTIFACTS, ROOT

# README order: (screenshot from a browser test, name in docs/tour, width).
SHOTS = [
    ("demo-browser-drawn-circle.png", "1-draw.png", 720),
    ("demo-browser-correction.png", "2-correct.png", 720),
    ("demo-browser-retrained.png", "3-teach.png", 720),
    ("demo-browser-phone.png", "4-phone.png", 260),
    ("firefox-labeler-review.png", "5-review.png", 720),
    ("labeler-version.png", "6-confusion.png", 720),
]
TOUR = ROOT / "docs" / "tour"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.helpers.tour", description=__doc__)
    parser.parse_args(argv)
    missing = [source for source, _, _ in SHOTS if not (ARTIFACTS / source).exists()]
    if missing:
        print(f"error: run the browser tests first; missing in {ARTIFACTS}: "
              f"{', '.join(missing)}", file=sys.stderr)
        return 2
    TOUR.mkdir(parents=True, exist_ok=True)
    for source, target, width in SHOTS:
        image = Image.open(ARTIFACTS / source).convert("RGB")
        image.thumbnail((width, 4 * width))
        image = image.quantize(colors=128)  # screenshots are flat colours: small files
        image.save(TOUR / target, optimize=True)
        print(f"{TOUR / target}: {image.size[0]}x{image.size[1]}, "
              f"{(TOUR / target).stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
