"""The command-line tools, run as real subprocesses on real files: the folder
importer, the retrain job and the predict CLI; every CLI's --help."""
import json

import numpy as np
import pytest
from PIL import Image

from db import Store
from model.sketches import SHAPES, dataset, draw

from tests.helpers.common import TEST_ALPHA, WEIGHTS, run_cli

# Each test starts the CLIs as child processes, each importing the model stack.
pytestmark = pytest.mark.slow

TRAIN_KEYS = {"version", "classes", "train_images", "test_accuracy", "seconds", "live"}


def write_class_tree(root, per_class, seed, format="PNG"):
    """root/<shape>/<n>.png drawn by model.sketches; returns the paths."""
    paths = []
    for n, (shape, image) in enumerate(dataset(per_class, seed=seed)):
        folder = root / shape
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{n}.{format.lower()}"
        image.save(path, format=format)
        paths.append(path)
    return paths


def import_tree(folder, db, check=True):
    return run_cli("-m", "labeler.importer", str(folder), "--db", str(db), check=check)


def one_json_line(stdout):
    lines = stdout.strip().splitlines()
    assert len(lines) == 1, stdout
    return json.loads(lines[0])


def split_counts(db):
    store = Store(db)
    try:
        return {split: len(store.labeled_images(split)) for split in ("train", "test")}
    finally:
        store.close()


@pytest.fixture(scope="module")
def flat_tree(tmp_path_factory):
    """DIR/<class>/ with 3 sketches a class, one BMP copy of a PNG (same pixels),
    a truncated PNG and a text file named .png."""
    root = tmp_path_factory.mktemp("flat")
    paths = write_class_tree(root, 3, seed=10)
    Image.open(paths[0]).save(paths[0].with_suffix(".bmp"))
    good = paths[1].read_bytes()
    broken = paths[1].parent / "broken.png"
    broken.write_bytes(good[:len(good) // 2])
    text = root / "square" / "notes.png"
    text.write_text("these are not the sketches you are looking for\n")
    (root / "README.txt").write_text("ignored: not in a class folder")
    return root, broken, text


@pytest.fixture(scope="module")
def split_db(tmp_path_factory):
    """A database imported from DIR/train/<class>/ and DIR/test/<class>/."""
    root = tmp_path_factory.mktemp("split")
    write_class_tree(root / "train", 8, seed=20)
    write_class_tree(root / "test", 4, seed=21)
    db = tmp_path_factory.mktemp("split-db") / "sketches.db"
    result = import_tree(root, db)
    return root, db, result


@pytest.fixture(scope="module")
def trained_db(split_db, backbone):
    _, db, _ = split_db
    result = run_cli("-m", "model.train", "--db", str(db), "--alpha", str(TEST_ALPHA),
                     "--views", "1", "--epochs", "10")
    return db, result


# -- importer ------------------------------------------------------------------


def test_importer_reports_and_skips_bad_files_and_deduplicates_same_pixels(flat_tree, tmp_path):
    root, broken, text = flat_tree
    db = tmp_path / "sketches.db"
    first = import_tree(root, db)
    # 12 drawings + their BMP twin (a duplicate of the PNG) + 2 unreadable files.
    assert one_json_line(first.stdout) == {"imported": 12, "duplicates": 1, "errors": 2}
    skipped = [line for line in first.stderr.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == 2
    assert any(str(broken) in line for line in skipped)
    assert any(str(text) in line for line in skipped)
    assert split_counts(db) == {"train": 12, "test": 0}
    store = Store(db)
    assert {c["name"]: c["images"] for c in store.classes()} == {s: 3 for s in SHAPES}
    store.close()


def test_importing_the_same_tree_twice_imports_nothing_new(flat_tree, tmp_path):
    root, _, _ = flat_tree
    db = tmp_path / "sketches.db"
    import_tree(root, db)
    second = import_tree(root, db)
    assert one_json_line(second.stdout) == {"imported": 0, "duplicates": 13, "errors": 2}
    assert split_counts(db) == {"train": 12, "test": 0}


def test_importer_takes_the_split_from_train_and_test_folders(split_db):
    _, db, result = split_db
    assert one_json_line(result.stdout) == {"imported": 48, "duplicates": 0, "errors": 0}
    assert split_counts(db) == {"train": 32, "test": 16}
    store = Store(db)
    test_labels = [label for _, label in store.labeled_images("test")]
    store.close()
    assert sorted(set(test_labels)) == sorted(SHAPES) and len(test_labels) == 16


def test_importer_refuses_a_missing_folder(tmp_path):
    result = import_tree(tmp_path / "nowhere", tmp_path / "sketches.db", check=False)
    assert result.returncode == 2
    assert "is not a folder" in result.stderr and result.stdout == ""


# -- train ---------------------------------------------------------------------


def test_train_cli_prints_one_json_summary_line(trained_db):
    db, result = trained_db
    summary = one_json_line(result.stdout)
    assert TRAIN_KEYS <= set(summary)
    assert summary["version"] == 1 and summary["live"] is True
    assert summary["classes"] == sorted(SHAPES)
    assert summary["train_images"] == 32
    assert 0.0 <= summary["test_accuracy"] <= 1.0 and summary["seconds"] > 0
    store = Store(db)
    config = store.model_version()["config"]
    store.close()
    assert (config["alpha"], config["views"], config["epochs"]) == (TEST_ALPHA, 1, 10)


def run_without_weights(tmp_path, *args):
    empty_home = tmp_path / "empty-keras-home"
    empty_home.mkdir()
    result = run_cli(*args, env={"KERAS_HOME": str(empty_home)}, check=False)
    assert result.returncode != 0
    assert WEIGHTS in result.stderr
    assert str(empty_home / "models") in result.stderr
    assert "--alpha" in result.stderr
    # Keras may announce its download attempt on stdout; no result may follow it.
    assert "Traceback" not in result.stderr and "{" not in result.stdout
    return result


def test_train_cli_without_weights_names_the_file_the_folder_and_alpha(flat_tree, tmp_path):
    root, _, _ = flat_tree
    db = tmp_path / "sketches.db"
    import_tree(root, db)
    run_without_weights(tmp_path, "-m", "model.train", "--db", str(db), "--alpha",
                        str(TEST_ALPHA), "--views", "1", "--epochs", "1")
    store = Store(db)
    assert store.model_versions() == [] and store.count_features() == 0
    store.close()


def test_predict_cli_without_weights_says_which_file_is_missing(trained_db, tmp_path):
    db, _ = trained_db
    path = tmp_path / "circle.png"
    draw("circle", np.random.default_rng(1)).save(path)
    run_without_weights(tmp_path, "-m", "model.predict", "--db", str(db), str(path))


# -- predict -------------------------------------------------------------------


def test_predict_cli_prints_one_json_line_per_image(trained_db, tmp_path):
    db, _ = trained_db
    rng = np.random.default_rng(99)
    paths = []
    for shape in ("circle", "star"):
        path = tmp_path / f"{shape}.png"
        draw(shape, rng).save(path)
        paths.append(str(path))
    result = run_cli("-m", "model.predict", "--db", str(db), *paths)
    lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [line["path"] for line in lines] == paths
    for line in lines:
        assert {"path", "label", "confidence", "top"} <= set(line)
        assert line["label"] in SHAPES and line["version"] == 1
        assert len(line["top"]) == 3
        assert line["top"][0] == [line["label"], line["confidence"]]
        probabilities = [p for _, p in line["top"]]
        assert probabilities == sorted(probabilities, reverse=True)
        assert 0 < sum(probabilities) <= 1 + 1e-6


def test_predict_cli_reports_unusable_images_per_line_and_exits_1(trained_db, tmp_path):
    db, _ = trained_db
    good, blank, text = tmp_path / "good.png", tmp_path / "blank.png", tmp_path / "text.png"
    draw("square", np.random.default_rng(5)).save(good)
    Image.new("RGBA", (300, 300), (0, 0, 0, 0)).save(blank)
    text.write_text("not an image")
    missing = tmp_path / "missing.png"
    paths = [str(p) for p in (blank, good, text, missing)]
    result = run_cli("-m", "model.predict", "--db", str(db), *paths, check=False)
    assert result.returncode == 1
    lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [line["path"] for line in lines] == paths
    assert "blank" in lines[0]["error"]
    assert "label" in lines[1] and "error" not in lines[1]
    assert "error" in lines[2] and "error" in lines[3]


def test_predict_cli_without_a_trained_model_says_so(tmp_path):
    path = tmp_path / "circle.png"
    draw("circle", np.random.default_rng(1)).save(path)
    result = run_cli("-m", "model.predict", "--db", str(tmp_path / "empty.db"), str(path),
                     check=False)
    assert result.returncode == 2
    assert "model.train" in result.stderr and result.stdout == ""


# -- arguments -------------------------------------------------------------------

CLIS = {
    "labeler.importer": ("DIR", "--db"),
    "model.train": ("--db", "--alpha", "--views", "--epochs", "--force"),
    "model.predict": ("IMAGE", "--db", "--top"),
}


# The command after "python", and the options its --help must name.
HELP = {
    "demo.py": ("--db", "--host", "--port", "--share", "--auth", "--alpha"),
    "-m labeler": ("--db", "--host", "--port", "--password", "--alpha"),
    "-m service.starter": ("--db", "--alpha"),
    "-m db.backup": ("DEST", "--db"),
    **{f"-m {module}": words for module, words in CLIS.items()},
}


@pytest.mark.parametrize("command", sorted(HELP))
def test_help_describes_each_cli(command):
    result = run_cli(*command.split(), "--help")
    assert result.stdout.startswith(f"usage: python {command}")
    for word in HELP[command]:
        assert word in result.stdout
    # One --db help everywhere, naming the environment variable too.
    assert "$SKETCHLAB_DB" in result.stdout


@pytest.mark.parametrize("module", sorted(CLIS))
def test_unknown_option_is_an_error_not_ignored(module, tmp_path):
    positional = {"labeler.importer": [str(tmp_path)], "model.predict": ["a.png"]}
    result = run_cli("-m", module, *positional.get(module, []), "--db",
                     str(tmp_path / "sketches.db"), "--bogus", check=False)
    assert result.returncode == 2
    assert "unrecognized arguments: --bogus" in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "sketches.db").exists()


def test_predict_top_zero_is_a_usage_error_not_a_crash(trained_db, tmp_path, capsys):
    from model import predict
    db, _ = trained_db
    path = tmp_path / "circle.png"
    draw("circle", np.random.default_rng(2)).save(path)
    try:
        status = predict.main(["--db", str(db), "--top", "0", str(path)])
    except SystemExit as exit:
        status = exit.code
    out = capsys.readouterr().out
    # Either refused as a usage error, or answered with at least the best class.
    assert status == 2 or (status == 0 and json.loads(out)["top"])


@pytest.mark.parametrize("arguments, warm_start", [
    (["--warm-start", "False"], False), (["--warm-start", "no"], False),
    (["--warm-start", "0"], False), (["--no-warm-start"], False),
    (["--warm-start"], True), (["--warm-start", "TRUE"], True), (["--warm-start", "yes"], True),
    (["--warm-start", "1", "--force"], True)])
def test_train_boolean_options_read_false_as_false(arguments, warm_start):
    from model.train import parse
    _, options = parse(arguments)
    assert options["warm_start"] is warm_start


def test_train_options_not_given_are_left_to_the_defaults():
    from model.train import parse
    _, options = parse([])
    assert options == {}


@pytest.mark.parametrize("arguments", [["--warm-start", "maybe"], ["--no-warm-start", "true"]])
def test_train_boolean_option_with_another_value_is_a_usage_error(arguments, capsys):
    from model.train import parse
    with pytest.raises(SystemExit) as exit:
        parse(arguments)
    assert exit.value.code == 2
    assert "--warm-start" in capsys.readouterr().err
