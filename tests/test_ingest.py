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
