"""The frozen ImageNet MobileNet v1 that turns images into feature vectors."""
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from model.errors import WeightsMissing

_ALPHA_TEXT = {0.25: "2_5", 0.5: "5_0", 0.75: "7_5", 1.0: "1_0"}
_lock = threading.Lock()


def weights_filename(alpha, input_size):
    return f"mobilenet_{_ALPHA_TEXT[alpha]}_{input_size}_tf_no_top.h5"


def keras_models_dir():
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "models")


def weights_help(alpha, input_size):
    name = weights_filename(alpha, input_size)
    return (f"The ImageNet weights of MobileNet v1 (alpha {alpha:g}, {input_size}px) are missing "
            f"and could not be downloaded. Put the file {name} in {keras_models_dir()} "
            f"(Keras looks there first; set KERAS_HOME to use another folder), or pick a "
            f"width whose weights you have with --alpha (e.g. --alpha 0.25 needs "
            f"{weights_filename(0.25, input_size)}).")


@functools.lru_cache(maxsize=4)
def load_backbone(alpha, input_size):
    """uint8-range images (N, S, S, 3) -> pooled features, frozen. Cached per process."""
    import keras
    with _lock:
        try:
            base = keras.applications.MobileNet(
                input_shape=(input_size, input_size, 3), alpha=alpha, include_top=False,
                weights="imagenet", pooling="avg")
        except Exception as error:
            if "fetch failure" in str(error) or isinstance(error, OSError):
                raise WeightsMissing(weights_help(alpha, input_size)) from error
            raise
    base.trainable = False
    inputs = keras.Input((input_size, input_size, 3), name="image")
    scaled = keras.layers.Rescaling(1 / 127.5, offset=-1, name="mobilenet_scale")(inputs)
    model = keras.Model(inputs, base(scaled, training=False), name=f"mobilenet_{alpha:g}")
    model.trainable = False
    return model


@functools.lru_cache(maxsize=4)
def compiled(alpha, input_size):
    """A traced call of the backbone: ~5x cheaper per call than model.predict()."""
    import tensorflow as tf
    model = load_backbone(alpha, input_size)
    spec = tf.TensorSpec([None, input_size, input_size, 3], tf.float32)
    return tf.function(lambda x: model(x, training=False), input_signature=[spec])


def extract(alpha, input_size, arrays, batch_size=64):
    """Features (N, D) float32 of a sequence of preprocessed uint8 arrays."""
    run = compiled(alpha, input_size)
    out = [run(np.asarray(arrays[i:i + batch_size], dtype=np.float32)).numpy()
           for i in range(0, len(arrays), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, feature_dim(alpha)), np.float32)


def extract_stream(alpha, input_size, batches):
    """Features for an iterable of (keys, arrays) batches; the next batch is
    prepared in a worker thread while the current one runs through the network."""
    run = compiled(alpha, input_size)
    with ThreadPoolExecutor(max_workers=1) as pool:
        iterator = iter(batches)
        pending = pool.submit(next, iterator, None)
        while True:
            batch = pending.result()
            if batch is None:
                return
            pending = pool.submit(next, iterator, None)
            keys, arrays = batch
            yield keys, run(np.asarray(arrays, dtype=np.float32)).numpy()


def feature_dim(alpha):
    return int(1024 * alpha)
