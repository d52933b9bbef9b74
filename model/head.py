"""The small trainable head: cached features -> class probabilities.

The head is the article's shape: dense ReLU layers (with dropout while
training) and a softmax, the same network as `keras_head` builds. It is
trained in NumPy: at this size a Keras step costs more in tracing and
per-batch Python than in arithmetic (a new head took 2-9 s to trace before
its first epoch), while NumPy runs an epoch of 7,200 features in ~0.1 s with
nothing to compile. Weights are stored as an .npz of [W0, b0, W1, b1, ...],
the order Keras's get_weights() uses, so `keras_head` loads them as they are.
"""
import functools
import io
import math

import numpy as np

ADAM_BETAS = (0.9, 0.999)
ADAM_EPSILON = 1e-7  # Keras's default
# Probabilities are floored here before the log of the loss: a confident miss
# costs -log(1e-7) = 16, not infinity.
LOG_FLOOR = 1e-7
MIN_EPOCHS = 3


def init_params(dims, rng):
    """Glorot-uniform weights and zero biases, as Keras Dense layers start."""
    params = []
    for fan_in, fan_out in zip(dims[:-1], dims[1:]):
        limit = np.sqrt(6 / (fan_in + fan_out))
        params += [rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32),
                   np.zeros(fan_out, np.float32)]
    return params


def forward(params, x, dropout=0.0, rng=None):
    """Probabilities, plus what backprop needs: each layer's input and dropout mask."""
    h = np.asarray(x, dtype=np.float32)
    inputs, masks = [], []
    for i in range(0, len(params) - 2, 2):
        inputs.append(h)
        h = np.maximum(h @ params[i] + params[i + 1], 0)
        mask = None
        if dropout and rng is not None:
            mask = (rng.random(h.shape, dtype=np.float32) >= dropout) / np.float32(1 - dropout)
            h = h * mask
        masks.append(mask)
    inputs.append(h)
    logits = h @ params[-2] + params[-1]
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True), inputs, masks


def gradients(params, probabilities, inputs, masks, y, weights, smoothing=0.0):
    """Gradients of the weighted mean cross-entropy with respect to every
    parameter; with `smoothing`, against targets that give that share of the
    true class's probability evenly to every class (label smoothing)."""
    delta = probabilities.copy()
    if smoothing:
        delta -= smoothing / delta.shape[1]
    delta[np.arange(len(y)), y] -= 1 - smoothing
    delta *= (weights / weights.sum())[:, None]
    grads = [None] * len(params)
    for layer in range(len(params) // 2 - 1, -1, -1):
        grads[2 * layer] = inputs[layer].T @ delta
        grads[2 * layer + 1] = delta.sum(axis=0)
        if layer:
            delta = delta @ params[2 * layer].T
            if masks[layer - 1] is not None:
                delta *= masks[layer - 1]
            delta *= inputs[layer] > 0
    return grads


def train_head(x, y, n_classes, config, validation=None, on_epoch=None, init=None):
    """Fit a head on features `x` (N, D) and class indices `y` with Adam.

    Classes are weighted so a rare class is not drowned out; targets are
    smoothed by `label_smoothing`. With `validation` (features, indices),
    training stops after `patience` epochs without a lower validation loss
    and keeps the best epoch's weights; without, it runs `max_epochs`.
    `init` (a parameter list of the same shape) starts from given weights.
    Returns (params, history of loss / accuracy / val_loss / val_accuracy).
    """
    rng = np.random.default_rng(config["seed"])
    dims = [x.shape[1], *config["head_units"], n_classes]
    params = [p.copy() for p in init] if init is not None else init_params(dims, rng)
    moments = [np.zeros_like(p) for p in params]
    velocities = [np.zeros_like(p) for p in params]
    scratch = [np.empty_like(p) for p in params]
    counts = np.bincount(y, minlength=n_classes)
    class_weight = (len(y) / (n_classes * np.maximum(counts, 1))).astype(np.float32)
    x = np.asarray(x, dtype=np.float32)
    history = {"loss": [], "accuracy": []}
    best, best_loss, waited, step = None, np.inf, 0, 0
    beta1, beta2 = ADAM_BETAS
    epochs = max_epochs(config, len(y))
    smoothing = config["label_smoothing"]
    # Small matrices: BLAS threads only wait on each other (10x slower on 2 busy cores).
    with _blas_threads().limit(limits=1, user_api="blas"):
        for epoch in range(epochs):
            order = rng.permutation(len(y))
            loss_sum = correct = 0.0
            for start in range(0, len(y), config["batch_size"]):
                index = order[start:start + config["batch_size"]]
                yb = y[index]
                probabilities, inputs, masks = forward(params, x[index], config["dropout"], rng)
                picked = probabilities[np.arange(len(yb)), yb]
                loss_sum += float(-np.log(np.maximum(picked, LOG_FLOOR)).sum())
                correct += float((probabilities.argmax(axis=1) == yb).sum())
                step += 1
                # A Python float: a NumPy float64 would make the update below float64 (NEP 50).
                rate = config["learning_rate"] * math.sqrt(1 - beta2 ** step) / (1 - beta1 ** step)
                for p, g, m, v, work in zip(params, gradients(params, probabilities, inputs,
                                                              masks, yb, class_weight[yb],
                                                              smoothing),
                                            moments, velocities, scratch):
                    # Adam: m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g g;
                    # p -= rate m / (sqrt(v) + eps), in place (half the time).
                    m *= beta1
                    m += np.multiply(g, 1 - beta1, out=work)
                    v *= beta2
                    v += np.multiply(np.multiply(g, 1 - beta2, out=work), g, out=work)
                    np.add(np.sqrt(v, out=work), ADAM_EPSILON, out=work)
                    p -= np.divide(np.multiply(m, rate, out=g), work, out=g)
            history["loss"].append(loss_sum / len(y))
            history["accuracy"].append(correct / len(y))
            if validation is not None:
                val_loss, val_accuracy = evaluate_head(params, *validation)
                history.setdefault("val_loss", []).append(val_loss)
                history.setdefault("val_accuracy", []).append(val_accuracy)
                if val_loss < best_loss - 1e-4:
                    best, best_loss, waited = [p.copy() for p in params], val_loss, 0
                else:
                    waited += 1
            if on_epoch is not None:
                on_epoch(epoch, {k: v[-1] for k, v in history.items()})
            if waited >= config["patience"]:
                break
    return (best if best is not None else params), history


@functools.cache
def _blas_threads():
    """The BLAS libraries' thread settings, looked up once: the lookup walks
    every loaded library (0.2 s once TensorFlow is loaded); NumPy's BLAS is
    loaded with NumPy, before this can be called."""
    from threadpoolctl import ThreadpoolController
    return ThreadpoolController()


def max_epochs(config, samples):
    """`epochs`, lowered for large data so a training shows at most
    `max_samples` samples (but never fewer than MIN_EPOCHS epochs)."""
    return min(config["epochs"], max(MIN_EPOCHS, -(-config["max_samples"] // max(samples, 1))))


def evaluate_head(params, x, y):
    """(mean cross-entropy, accuracy) of a head on labeled features."""
    probabilities = forward(params, x)[0]
    picked = probabilities[np.arange(len(y)), y]
    return (float(-np.log(np.maximum(picked, LOG_FLOOR)).mean()),
            float((probabilities.argmax(axis=1) == y).mean()))


def head_to_bytes(params, reference=None):
    """The head's weights, and the training features novelty is measured
    against (`model.trust`), as one .npz."""
    out = io.BytesIO()
    extra = {} if reference is None else {"reference": reference}
    np.savez(out, *params, **extra)
    return out.getvalue()


def head_from_bytes(blob):
    with np.load(io.BytesIO(blob)) as saved:
        count = sum(name.startswith("arr_") for name in saved.files)
        return [saved[f"arr_{i}"].astype(np.float32) for i in range(count)]


def reference_from_bytes(blob):
    """The stored novelty reference (unit feature rows, float32 for the
    matrix product each answer makes), or None."""
    with np.load(io.BytesIO(blob)) as saved:
        return saved["reference"].astype(np.float32) if "reference" in saved.files else None


class NumpyHead:
    """A stored head, callable on features (N, D) -> probabilities (N, classes)."""

    def __init__(self, blob):
        self.params = head_from_bytes(blob)
        self.reference = reference_from_bytes(blob)

    def __call__(self, features):
        return forward(self.params, features)[0]


def keras_head(blob, dropout=0.0, temperature=1.0):
    """The same head as Keras layers with the stored weights (for export); a
    `temperature` divides the last layer's logits (calibration, `model.trust`)."""
    from model.backbone import keras_module
    keras = keras_module()
    params = head_from_bytes(blob)
    params[-2:] = [p / np.float32(temperature) for p in params[-2:]]
    layers = [keras.Input((params[0].shape[0],), name="features")]
    for i in range(0, len(params) - 2, 2):
        layers.append(keras.layers.Dense(params[i].shape[1], activation="relu",
                                         name=f"dense_{i // 2}"))
        if dropout:
            layers.append(keras.layers.Dropout(dropout, name=f"dropout_{i // 2}"))
    layers.append(keras.layers.Dense(params[-1].shape[0], activation="softmax",
                                     name="probabilities"))
    head = keras.Sequential(layers, name="head")
    head.set_weights(params)
    return head
