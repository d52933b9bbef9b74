"""The fast paths must give the answers of the plain Keras ones."""
import textwrap

import numpy as np
import pytest

from model.config import make_config
from model.head import NumpyHead, forward, gradients, head_to_bytes, init_params, keras_head, train_head
from model.images import preprocess
from model.sketches import dataset
from model.train import PROMOTION_TOLERANCE, promotes
from tests.helpers.common import run_cli


@pytest.mark.slow
def test_numpy_head_matches_the_keras_head_it_exports_to():
    rng = np.random.default_rng(0)
    params = init_params([32, 16, 8, 4], rng)
    params = [p + rng.normal(0, 0.1, p.shape).astype(np.float32) for p in params]
    blob = head_to_bytes(params)
    x = rng.normal(size=(10, 32)).astype(np.float32)
    expected = np.asarray(keras_head(blob, dropout=0.2)(x, training=False))
    np.testing.assert_allclose(NumpyHead(blob)(x), expected, atol=1e-6)


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_head_gradients_match_finite_differences_of_the_smoothed_loss(smoothing):
    rng = np.random.default_rng(1)
    params = [p.astype(np.float64) for p in init_params([5, 4, 3], rng)]
    x = rng.normal(size=(6, 5))
    y = np.array([0, 1, 2, 0, 1, 2])
    weights = np.array([1.0, 2.0, 1.0, 0.5, 1.0, 1.0])
    # Label smoothing: the true class keeps 1 - smoothing, every class gets smoothing / 3.
    targets = np.full((6, 3), smoothing / 3)
    targets[np.arange(6), y] += 1 - smoothing

    def loss(ps):
        logs = np.log(forward(ps, x)[0])
        return -(weights * (targets * logs).sum(axis=1)).sum() / weights.sum()

    probabilities, inputs, masks = forward(params, x)
    analytic = gradients(params, probabilities, inputs, masks, y, weights, smoothing)
    for p, g in zip(params, analytic):
        for index in list(np.ndindex(p.shape))[:6]:
            old = p[index]
            p[index] = old + 1e-6
            up = loss(params)
            p[index] = old - 1e-6
            down = loss(params)
            p[index] = old
            assert (up - down) / 2e-6 == pytest.approx(g[index], abs=1e-6)


CENTERS = np.random.default_rng(99).normal(0, 1, (3, 20))


def _blobs(n, rng, noise=0.6):
    y = rng.integers(0, 3, n)
    return (CENTERS[y] + rng.normal(0, noise, (n, 20))).astype(np.float32), y


def test_head_learns_separable_classes_and_stops_early_on_a_plateau():
    rng = np.random.default_rng(2)
    x, y = _blobs(600, rng)
    xv, yv = _blobs(200, rng)
    config = make_config(head_units=[32, 16], epochs=200, patience=3)
    params, history = train_head(x, y, 3, config, validation=(xv, yv))
    assert (forward(params, xv)[0].argmax(axis=1) == yv).mean() > 0.95
    assert len(history["loss"]) < 200
    # The kept weights are the best epoch's, not the last one's.
    best = min(history["val_loss"])
    picked = forward(params, xv)[0][np.arange(len(yv)), yv]
    assert -np.log(picked).mean() == pytest.approx(best, rel=1e-4)


def test_label_smoothing_keeps_a_head_from_certainty_on_separable_classes():
    rng = np.random.default_rng(6)
    x, y = _blobs(300, rng, noise=0.3)
    top = {}
    for smoothing in (0.0, 0.2):
        config = make_config(head_units=[], epochs=200, label_smoothing=smoothing)
        params, _ = train_head(x, y, 3, config)
        probabilities = forward(params, x)[0]
        assert (probabilities.argmax(axis=1) == y).mean() == 1.0
        top[smoothing] = np.median(probabilities.max(axis=1))
    # The smoothed loss is lowest at 1 - 0.2 + 0.2 / 3 = 0.867 for the true class.
    assert top[0.0] > 0.99 and 0.8 < top[0.2] < 0.93


def test_rare_class_is_weighted_up():
    # Overlapping classes, class 2 keeps ~3% of its images: unweighted, its
    # recall was 0.58 here; weighted, 0.93.
    rng = np.random.default_rng(3)
    x, y = _blobs(900, rng, noise=0.9)
    keep = (y != 2) | (rng.random(len(y)) < 0.03)
    config = make_config(head_units=[16], epochs=30, patience=30)
    params, _ = train_head(x[keep], y[keep], 3, config)
    xt, yt = _blobs(600, np.random.default_rng(4), noise=0.9)
    recall = (forward(params, xt[yt == 2])[0].argmax(axis=1) == 2).mean()
    assert recall > 0.85


@pytest.mark.parametrize("new, live, expected", [
    (0.90, 0.90, True),
    (0.90 - PROMOTION_TOLERANCE + 1e-9, 0.90, True),
    (0.90 - PROMOTION_TOLERANCE - 1e-3, 0.90, False),
    (0.50, None, True),
    (None, 0.90, True),
])
def test_promotion_allows_only_noise_sized_drops(new, live, expected):
    assert promotes(new, live) is expected


@pytest.fixture(scope="module")
def sketches():
    return np.stack([preprocess(image, 224) for _, image in dataset(3, seed=5)])


def test_litert_features_match_keras_on_sketches(backbone, sketches):
    from model.backbone import FEATURE_TOLERANCE, extractor
    run = extractor(0.25, 224)
    pytest.importorskip("ai_edge_litert")
    assert run.engine == "litert"
    reference = backbone.predict(sketches.astype(np.float32), verbose=0)
    assert np.abs(run(sketches) - reference).max() <= FEATURE_TOLERANCE
    assert np.abs(run(sketches[..., :1]) - reference).max() <= FEATURE_TOLERANCE


def test_colour_images_and_mixed_batches_match_keras_too(backbone, sketches):
    from model.backbone import FEATURE_TOLERANCE, extractor
    from model.images import grey_images
    run = extractor(0.25, 224)
    pytest.importorskip("ai_edge_litert")
    tinted = sketches.copy()
    tinted[..., 2] //= 2
    mixed = np.concatenate([sketches[:3], tinted[:3]])
    assert grey_images(mixed).tolist() == [True] * 3 + [False] * 3
    reference = backbone.predict(mixed.astype(np.float32), verbose=0)
    assert np.abs(run(mixed) - reference).max() <= FEATURE_TOLERANCE


def test_float_pixels_are_rounded_not_truncated_for_the_uint8_backbone():
    from model.images import to_uint8
    pixels = np.array([-3.0, 0.4, 0.6, 127.5, 254.7, 300.0], np.float32)
    assert to_uint8(pixels).tolist() == [0, 0, 1, 128, 255, 255]


def test_extractor_falls_back_to_tensorflow_when_litert_disagrees(backbone, sketches, monkeypatch):
    from model import backbone as backbones
    monkeypatch.setattr(backbones, "FEATURE_TOLERANCE", -1.0)
    run = backbones.FeatureExtractor(0.25, 224)
    assert run.engine == "tensorflow"
    reference = backbone.predict(sketches.astype(np.float32), verbose=0)
    np.testing.assert_allclose(run(sketches), reference, atol=1e-4)
    np.testing.assert_allclose(run(sketches[..., :1]), reference, atol=1e-4)


def test_converted_backbone_is_cached_beside_the_weights(backbone):
    import glob
    import os
    from model.backbone import _litert_models, keras_models_dir
    pytest.importorskip("ai_edge_litert")
    first, paths = _litert_models(0.25, 224)
    cached = glob.glob(os.path.join(keras_models_dir(), "sketchlab-*.tflite"))
    assert sorted(cached) == sorted(paths)
    stamps = [os.stat(path).st_mtime_ns for path in paths]
    assert _litert_models(0.25, 224) == (first, paths)
    assert [os.stat(path).st_mtime_ns for path in paths] == stamps


def test_epochs_shrink_for_large_data_so_training_time_stays_linear():
    from model.head import MIN_EPOCHS, max_epochs
    config = make_config(epochs=60, max_samples=300_000)
    assert max_epochs(config, 1_000) == 60
    assert max_epochs(config, 30_000) == 10
    assert max_epochs(config, 300_000) == MIN_EPOCHS
    samples = [n * max_epochs(config, n) for n in (100_000, 200_000, 400_000)]
    assert samples[2] / samples[0] == 4  # linear once the budget binds


@pytest.mark.slow
def test_two_threads_loading_tensorflow_at_once_neither_deadlock_nor_break_it():
    # A labeler upload (features in the job thread) and a model export (the
    # request thread) once imported TensorFlow together: importlib's
    # _DeadlockError, then every export and retrain failed until a restart.
    # Only a fresh interpreter has TensorFlow still to import.
    script = textwrap.dedent("""
        import threading
        from model.backbone import keras_module, tensorflow_module
        errors = []
        def use(load, name):
            try:
                getattr(load(), name)
            except Exception as error:
                errors.append(repr(error))
        threads = [threading.Thread(target=use, args=(keras_module, "applications")),
                   threading.Thread(target=use, args=(tensorflow_module, "lite"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        keras_module().applications.MobileNet, tensorflow_module().lite.TFLiteConverter
        print("errors:", errors)
    """)
    result = run_cli("-c", script)
    assert result.stdout.strip() == "errors: []", result.stdout + result.stderr[-2000:]

