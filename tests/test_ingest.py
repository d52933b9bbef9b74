"""One layout rule for folders and zips: the same relative paths give the
same class and split whichever way the images arrive."""
import io
import zipfile

import pytest

from db.errors import SketchError
from service import ingest
from tests.helpers.labeler import png_bytes

PATHS = {"cat/a.png": ("train", "cat"), "cat/nested/b.png": ("train", "cat"),
         "train/dog/c.png": ("train", "dog"), "test/dog/d.png": ("test", "dog"),
         "top.png": None, "train/loose.png": None, ".hidden/e.png": None,
         "cat/notes.txt": None}


def test_folders_and_zips_read_classes_and_splits_by_the_same_rule(tmp_path):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as out:
        for seed, path in enumerate(PATHS):
            data = png_bytes("circle", seed)
            (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / path).write_bytes(data)
            out.writestr(path, data)
    from_folder = {path.relative_to(tmp_path).as_posix(): (split, label)
                   for path, label, split in ingest.find_images(tmp_path)}
    assert from_folder == {p: where for p, where in PATHS.items() if where}
    entries, errors = ingest.zip_entries(archive.getvalue(), None, "train")
    assert errors == []
    # A zip's loose files keep the chosen class (here none) instead of a folder's name.
    assert sorted((split, label or "") for _, split, label in entries) == sorted(
        list(from_folder.values()) + [("train", ""), ("train", "")])


@pytest.mark.parametrize("source", ["import", "generated", "camera", ""])
def test_uploads_refuse_a_source_outside_the_upload_vocabulary(store, source):
    with pytest.raises(SketchError, match="Unknown source"):
        ingest.store_uploads(store, [("a.png", png_bytes())], None, "train", source, "test")
    assert store.count_images() == 0


def _png(width, height):
    from PIL import Image, ImageDraw
    image = Image.new("1", (width, height), 1)
    ImageDraw.Draw(image).line((0, 0, width - 1, height - 1), fill=0, width=9)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _zip_of(data, count, prefix="shapes/"):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for i in range(count):
            out.writestr(f"{prefix}{i}.png", data)
    return archive.getvalue()


def _counting_decode(monkeypatch):
    """ingest.decode, recording the size of every image it decodes."""
    decoded = []
    real = ingest.decode

    def decode(data):
        image = real(data)
        decoded.append(image.width * image.height)
        return image
    monkeypatch.setattr(ingest, "decode", decode)
    return decoded


def test_an_upload_decodes_at_most_max_upload_pixels_and_says_what_it_skipped(
        store, monkeypatch):
    monkeypatch.setattr(ingest, "MAX_UPLOAD_PIXELS", 3 * 600 * 600 + 100 * 100)
    decoded = _counting_decode(monkeypatch)
    big = _png(600, 600)
    blobs = [("a.zip", _zip_of(big, 5)), ("one more.png", big),
             ("small.png", png_bytes("circle", 3))]
    summary = ingest.store_uploads(store, blobs, None, "train", "upload", "test")
    # Three of the zip's members fit; the other two and the file after them do
    # not (their headers say so before anything is decoded), the small one still does.
    assert decoded == [600 * 600] * 3 + [96 * 96]
    assert sum(decoded) <= ingest.MAX_UPLOAD_PIXELS
    assert summary["stored"] + summary["duplicates"] == 4
    skipped = {name: message for name, message in summary["errors"]}
    assert set(skipped) == {"shapes/3.png", "shapes/4.png", "one more.png"}
    assert all("pixels" in message and "in parts" in message for message in skipped.values())


def test_the_issues_zip_of_forty_huge_pngs_decodes_only_max_upload_pixels(store, monkeypatch):
    # 40 PNGs of 7000x7000 pixels in a zip of a few KB once cost half a minute
    # of CPU. Only their headers are read past the budget; decoding is faked
    # (a small image) to keep the test fast, the headers are real.
    from PIL import Image
    from model.images import MAX_IMAGE_PIXELS
    assert ingest.MAX_UPLOAD_PIXELS >= MAX_IMAGE_PIXELS  # any one image the app accepts fits
    sizes = []

    def decode(data):
        sizes.append(Image.open(io.BytesIO(data)).size)
        return Image.new("RGB", (8, 8), "white")
    monkeypatch.setattr(ingest, "decode", decode)
    archive = _zip_of(_png(7000, 7000), 40, prefix="")
    assert len(archive) < 1_000_000  # 1.96 billion pixels
    entries, errors = ingest.zip_entries(archive, "circle", "train")
    assert sizes == [(7000, 7000)] * (ingest.MAX_UPLOAD_PIXELS // 7000 ** 2)
    assert len(entries) == len(sizes) and len(errors) == 40 - len(sizes)
