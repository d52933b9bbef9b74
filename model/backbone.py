"""The frozen ImageNet MobileNet v1 that turns images into feature vectors.

Keras builds it from the ordinary cached ImageNet weights. For speed it runs
as a LiteRT (TFLite) interpreter with XNNPACK: on 2 cores that is ~6x faster
than a compiled TensorFlow call and ~20x faster than `model.predict()`
(bench.latency). The converted file is cached beside the weights; each load
checks it against Keras on probe images, and falls back to the compiled
TensorFlow call if the interpreter is missing or disagrees.
"""
import contextlib
import functools
import hashlib
import io
import logging
import os
import threading

import numpy as np

from model.errors import WeightsMissing

_ALPHA_TEXT = {0.25: "2_5", 0.5: "5_0", 0.75: "7_5", 1.0: "1_0"}
# Interpreter threads. Serving one image: both cores of the target machines
# (791 against 443 img/s alone, bench.features). Bulk extraction: one, while a
# worker process prepares the next images on the other core (a cold retrain:
# 463 against 386 features/s with two, bench.foundation).
LITERT_THREADS = 2
BULK_THREADS = 1
# Images per interpreter call: XNNPACK was fastest at batch 1 here (bench.features).
LITERT_BATCH = 1
# Largest difference allowed between LiteRT and Keras features on the probes.
FEATURE_TOLERANCE = 1e-3
_lock = threading.Lock()
log = logging.getLogger(__name__)


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


def feature_dim(alpha):
    return int(1024 * alpha)


@functools.lru_cache(maxsize=4)
def load_backbone(alpha, input_size):
    """Keras model: uint8-range images (N, S, S, 3) -> pooled features. Frozen."""
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
    """The Keras backbone as a traced TensorFlow call (~5x cheaper than predict())."""
    import tensorflow as tf
    model = load_backbone(alpha, input_size)

    @tf.function(input_signature=[tf.TensorSpec([None, input_size, input_size, 3], tf.float32)])
    def run(images):
        return model(images, training=False)
    return run


def probe_images(input_size):
    """Fixed inputs on which LiteRT must reproduce Keras: paper, noise, a ring."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:input_size, :input_size]
    ring = np.abs(np.hypot(yy - input_size / 2, xx - input_size / 2) - input_size / 3) < 4
    sketch = np.where(ring[..., None], 0, 255).repeat(3, axis=2)
    noise = rng.integers(0, 256, (input_size, input_size, 3))
    return np.stack([np.full_like(sketch, 255), noise, sketch]).astype(np.float32)


class FeatureExtractor:
    """Callable: uint8-range arrays (N, S, S, 3) -> float32 features (N, D).

    One instance per backbone per process; calls are serialized by a lock
    (an interpreter is not thread-safe, and it already uses both cores)."""

    def __init__(self, alpha, input_size, batch_size=None, threads=None):
        self.alpha, self.input_size = alpha, input_size
        self.threads = threads or LITERT_THREADS
        self.batch_size = batch_size or LITERT_BATCH
        self._shape = None
        self._lock = threading.Lock()
        self._interpreter = None
        self.engine = "tensorflow"
        self._tf = compiled(alpha, input_size)
        try:
            self._interpreter = _interpreter(_litert_model(alpha, input_size), self.threads)
            self.engine = "litert"
        except Exception as error:  # no LiteRT on this platform, or conversion failed
            log.warning("LiteRT unavailable (%s); using TensorFlow", error)
            return
        probes = probe_images(input_size)
        difference = np.abs(self._litert(probes) - self._tf(probes).numpy()).max()
        if not difference <= FEATURE_TOLERANCE:
            log.warning("LiteRT features differ from Keras by %g; using TensorFlow", difference)
            self._interpreter, self.engine = None, "tensorflow"

    def __call__(self, arrays):
        arrays = np.asarray(arrays, dtype=np.float32)
        if self._interpreter is None:
            return self._tf(arrays).numpy()
        return self._litert(arrays)

    def _litert(self, arrays):
        with self._lock:
            interpreter = self._interpreter
            index = interpreter.get_input_details()[0]["index"]
            out = []
            for start in range(0, len(arrays), self.batch_size):
                chunk = arrays[start:start + self.batch_size]
                if chunk.shape != self._shape:
                    interpreter.resize_tensor_input(index, chunk.shape)
                    interpreter.allocate_tensors()
                    self._shape = chunk.shape
                interpreter.set_tensor(index, chunk)
                interpreter.invoke()
                out.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
            return np.concatenate(out) if out else np.zeros((0, feature_dim(self.alpha)), np.float32)


@functools.lru_cache(maxsize=8)
def extractor(alpha, input_size, threads=LITERT_THREADS):
    return FeatureExtractor(alpha, input_size, threads=threads)


def _interpreter(model_bytes, threads):
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_content=model_bytes, num_threads=threads)
    interpreter.allocate_tensors()
    return interpreter


def _litert_model(alpha, input_size):
    """The backbone as LiteRT bytes, converted once and cached beside the weights
    under a name tied to the weights' content."""
    import tensorflow as tf
    weights = os.path.join(keras_models_dir(), weights_filename(alpha, input_size))
    model = load_backbone(alpha, input_size)  # downloads the weights if needed
    digest = hashlib.sha256(open(weights, "rb").read()).hexdigest()[:16]
    cached = os.path.join(keras_models_dir(), f"sketchlab-{weights_filename(alpha, input_size)[:-3]}"
                                              f"-{digest}.tflite")
    if os.path.exists(cached):
        with open(cached, "rb") as f:
            return f.read()
    # from_keras_model: converting the traced concrete function gave NaN features.
    with contextlib.redirect_stdout(io.StringIO()):
        data = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    temporary = f"{cached}.{os.getpid()}.tmp"
    try:
        with open(temporary, "wb") as f:
            f.write(data)
        os.replace(temporary, cached)  # atomic: concurrent processes never read half a file
    except OSError as error:
        log.warning("cannot cache %s: %s", cached, error)
    return data
