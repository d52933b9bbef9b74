"""Calibrated confidence and "none of my classes" (model.trust), on synthetic
probabilities and features whose true answers are known."""
import numpy as np
import pytest

from model import trust


def softmax(logits):
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def overconfident(count, temperature, seed=0, classes=4):
    """(the head's probabilities, labels) where the labels are drawn from the
    softmax of the logits divided by `temperature`: the true calibration."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 4, (count, classes))
    truth = softmax(logits / temperature)
    labels = np.array([rng.choice(classes, p=p) for p in truth])
    return softmax(logits), labels


def test_calibration_is_the_softmax_of_the_logits_divided_by_the_temperature():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, (50, 5))
    assert np.allclose(trust.calibrate(softmax(logits), 2.5), softmax(logits / 2.5))
    assert np.array_equal(trust.calibrate(softmax(logits), 1.0), softmax(logits))
    # The ranking, so the answer, never changes.
    assert np.array_equal(trust.calibrate(softmax(logits), 3).argmax(1), logits.argmax(1))


def test_the_fitted_temperature_is_the_one_the_labels_were_drawn_with():
    probabilities, labels = overconfident(3000, temperature=2.5)
    assert trust.fit_temperature(probabilities, labels) == pytest.approx(2.5, rel=0.15)


@pytest.mark.parametrize("temperature", [0.3, 1.0, 2.5, 12.0])
def test_the_fitted_temperature_is_the_best_of_every_one_on_the_grid(temperature):
    probabilities, labels = overconfident(500, temperature, seed=3)
    rows = np.arange(len(labels))
    losses = [-np.log(np.maximum(trust.calibrate(probabilities, t)[rows, labels], 1e-12)).mean()
              for t in trust.TEMPERATURES]
    assert trust.fit_temperature(probabilities, labels) == pytest.approx(
        trust.TEMPERATURES[int(np.argmin(losses))], rel=1e-9)


def test_too_few_held_out_rows_leave_the_temperature_at_one():
    probabilities, labels = overconfident(trust.MIN_CALIBRATION_ROWS - 1, temperature=3)
    assert trust.fit_temperature(probabilities, labels) == 1.0


def test_calibration_error_is_large_when_overconfident_and_small_once_calibrated():
    probabilities, labels = overconfident(4000, temperature=3, seed=2)
    before = trust.calibration_error(probabilities, labels)
    fitted = trust.fit_temperature(probabilities, labels)
    after = trust.calibration_error(trust.calibrate(probabilities, fitted), labels)
    assert before > 0.1 and after < 0.03
    assert trust.calibration_error(np.zeros((0, 4)), []) is None


def clusters(count, seed, centres):
    """Feature rows around each centre direction, with one group per row."""
    rng = np.random.default_rng(seed)
    rows = [c + rng.normal(0, 0.3, (count, len(c))) for c in centres]
    return np.concatenate(rows).astype(np.float32)


CENTRES = np.eye(16)[:3] * 3


def test_the_threshold_calls_about_the_promised_share_of_known_inputs_unknown():
    features = clusters(300, 0, CENTRES)
    reference, threshold = trust.fit_novelty(features, np.arange(len(features)))
    fresh = trust.judged(reference, threshold, clusters(300, 1, CENTRES))
    called = np.mean([j["unknown"] for j in fresh])
    assert called <= 2 * trust.UNKNOWN_FALSE_ALARM


def test_a_large_reference_sets_its_threshold_on_a_bounded_spread_sample(monkeypatch):
    measured, measure = [], trust._left_out_distances

    def recording(reference, groups, rows, k):
        measured.append(rows)
        return measure(reference, groups, rows, k)
    monkeypatch.setattr(trust, "_left_out_distances", recording)
    features = clusters(trust.THRESHOLD_ROWS, 0, CENTRES)
    kinds = np.tile([0, 1], len(features) // 2)
    reference, threshold = trust.fit_novelty(features, np.arange(len(features)), kinds)
    assert len(reference) == len(features)
    assert [len(rows) for rows in measured] == [trust.THRESHOLD_ROWS] * 2
    # Spread over every class, each row of its own kind.
    for kind, rows in enumerate(measured):
        assert set(kinds[rows]) == {kind}
        assert np.bincount(rows // trust.THRESHOLD_ROWS).min() > trust.THRESHOLD_ROWS // 4
    fresh = trust.judged(reference, threshold, clusters(300, 1, CENTRES))
    assert np.mean([j["unknown"] for j in fresh]) <= 2 * trust.UNKNOWN_FALSE_ALARM


def test_inputs_unlike_every_class_are_unknown_and_scored_above_one():
    features = clusters(200, 0, CENTRES)
    reference, threshold = trust.fit_novelty(features, np.arange(len(features)))
    stranger = clusters(100, 2, np.eye(16)[8:9] * 3)
    judged = trust.judged(reference, threshold, stranger)
    assert all(j["unknown"] and j["unknown_score"] > 1 for j in judged)


def test_an_images_own_views_do_not_count_as_its_neighbours():
    # Each image in two near-identical views. Measured against its own other
    # view, an image would look closer to the known classes than any new
    # input, and the threshold would shrink to nothing.
    single = clusters(200, 0, CENTRES)
    twice = np.repeat(single, 2, axis=0) + np.float32(1e-3)
    _, grouped = trust.fit_novelty(twice, np.repeat(np.arange(len(single)), 2), k=1)
    _, ungrouped = trust.fit_novelty(twice, np.arange(len(twice)), k=1)
    _, plain = trust.fit_novelty(single, np.arange(len(single)), k=1)
    assert grouped == pytest.approx(plain, rel=0.05)
    assert ungrouped < 0.01 * plain


def test_a_version_without_a_reference_never_claims_unknown():
    assert trust.judged(None, None, np.ones((2, 4))) == [trust.NO_REFERENCE] * 2


def test_the_reference_keeps_every_view_of_at_most_the_cap_of_images_per_class():
    labels = np.array([0] * (2 * trust.MAX_REFERENCE_PER_CLASS + 6) + [1] * 6)
    groups = np.arange(len(labels)) // 2
    kept = trust.reference_rows(labels, groups)
    assert (labels[kept] == 0).sum() == 2 * trust.MAX_REFERENCE_PER_CLASS
    assert (labels[kept] == 1).sum() == 6
    assert set(np.bincount(groups[kept])[np.unique(groups[kept])]) == {2}
