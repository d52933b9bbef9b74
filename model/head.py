"""The small trainable head: cached features -> class probabilities."""
import io

import numpy as np


def build_head(feature_dim, n_classes, units, dropout):
    import keras
    layers = [keras.Input((feature_dim,), name="features")]
    for i, width in enumerate(units):
        layers.append(keras.layers.Dense(width, activation="relu", name=f"dense_{i}"))
        if dropout:
            layers.append(keras.layers.Dropout(dropout, name=f"dropout_{i}"))
    layers.append(keras.layers.Dense(n_classes, activation="softmax", name="probabilities"))
    return keras.Sequential(layers, name="head")


def train_head(x, y, n_classes, config, validation=None, on_epoch=None):
    """Fit a new head on features `x` (N, D) and class indices `y`.

    Early stopping on `validation` (features, indices) restores the best
    epoch; classes are weighted so a rare class is not drowned out.
    Returns (head, history dict).
    """
    import keras
    keras.utils.set_random_seed(config["seed"])
    head = build_head(x.shape[1], n_classes, config["head_units"], config["dropout"])
    head.compile(optimizer=keras.optimizers.Adam(config["learning_rate"]),
                 loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    callbacks = []
    if validation is not None:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=config["patience"], restore_best_weights=True))
    if on_epoch is not None:
        callbacks.append(keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: on_epoch(epoch, logs)))
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    weights = {i: float(len(y) / (n_classes * c)) for i, c in enumerate(counts) if c}
    history = head.fit(x, y, batch_size=config["batch_size"], epochs=config["epochs"],
                       validation_data=validation, class_weight=weights, shuffle=True,
                       callbacks=callbacks, verbose=0)
    return head, {k: [float(v) for v in vs] for k, vs in history.history.items()}


def head_to_bytes(head):
    out = io.BytesIO()
    np.savez(out, *head.get_weights())
    return out.getvalue()


def head_from_bytes(blob, feature_dim, n_classes, config):
    head = build_head(feature_dim, n_classes, config["head_units"], config["dropout"])
    with np.load(io.BytesIO(blob)) as weights:
        head.set_weights([weights[f"arr_{i}"] for i in range(len(weights.files))])
    return head
