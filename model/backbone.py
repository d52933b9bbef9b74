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
from model.images import grey_images, to_uint8

_ALPHA_TEXT = {0.25: "2_5", 0.5: "5_0", 0.75: "7_5", 1.0: "1_0"}
# Interpreter threads for serving: one. A second thread makes a single image
# sooner only on an idle machine (bench.features); a server classifying for
# many people at once has its other core busy, and there the second thread
# costs CPU (1.9-2.2 ms of CPU an image against 1.3-1.5 ms, load 8) and time.
# Bulk extraction runs one single-threaded interpreter per core, in worker
# processes (model.features).
LITERT_THREADS = 1
# Images per interpreter call: XNNPACK was fastest at batch 1 here (bench.features).
LITERT_BATCH = 1
# Largest difference allowed between LiteRT and Keras features on the probes.
FEATURE_TOLERANCE = 1e-3
_lock = threading.Lock()
# TensorFlow's modules import each other in cycles: two threads importing it
# for the first time at once deadlock (importlib's _DeadlockError), and the
# half-imported TensorFlow then fails every later use ("Registering two
# gradient ...") until a restart. Every import of Keras or TensorFlow goes
# through keras_module() and tensorflow_module().
_import_lock = threading.Lock()
log = logging.getLogger(__name__)


def keras_module():
    with _import_lock:
        import keras
    return keras


def tensorflow_module():
    with _import_lock:
        import tensorflow
    return tensorflow


def weights_filename(alpha, input_size):
    return f"mobilenet_{_ALPHA_TEXT[alpha]}_{input_size}_tf_no_top.h5"


def keras_models_dir():
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "models")


def weights_help(alpha, input_size):
    name = weights_filename(alpha, input_size)
    other = 1.0 if alpha == 0.25 else 0.25
    return (f"The ImageNet weights of MobileNet v1 (alpha {alpha:g}, {input_size}px) are missing "
            f"and could not be downloaded. Put the file {name} in {keras_models_dir()} "
            f"(Keras looks there first; set KERAS_HOME to use another folder), or pick a "
            f"width whose weights you have with --alpha (e.g. --alpha {other:g} needs "
            f"{weights_filename(other, input_size)}).")


def feature_dim(alpha):
    return int(1024 * alpha)


@functools.lru_cache(maxsize=4)
def load_backbone(alpha, input_size):
    """Keras model: uint8-range images (N, S, S, 3) -> pooled features. Frozen."""
    keras = keras_module()
    with _lock:
        try:
            base = keras.applications.MobileNet(
                input_shape=(input_size, input_size, 3), alpha=alpha, include_top=False,
                weights="imagenet", pooling="avg")
        except Exception as error:
            if "fetch failure" in str(error) or isinstance(error, OSError):
                raise WeightsMissing(weights_help(alpha, input_size), os.path.join(
                    keras_models_dir(), weights_filename(alpha, input_size))) from error
            raise
    base.trainable = False
    inputs, scaled = _scaled_input(input_size, 3)
    model = keras.Model(inputs, base(scaled, training=False), name=f"mobilenet_{alpha:g}")
    model.trainable = False
    return model


@functools.lru_cache(maxsize=4)
def compiled(alpha, input_size):
    """The Keras backbone as a traced TensorFlow call (~5x cheaper than predict())."""
    tf = tensorflow_module()
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


class LiteRTRunner:
    """uint8 images (N, S, S, C) -> float32 features through one LiteRT
    interpreter. Not thread-safe."""

    def __init__(self, model_bytes, threads, batch_size=None):
        from ai_edge_litert.interpreter import Interpreter
        self._interpreter = Interpreter(model_content=model_bytes, num_threads=threads)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        output = self._interpreter.get_output_details()[0]
        self._output, self.dim = output["index"], int(output["shape"][-1])
        self.batch_size = batch_size or LITERT_BATCH
        self._shape = None

    def __call__(self, arrays):
        out = np.empty((len(arrays), self.dim), np.float32)
        for start in range(0, len(arrays), self.batch_size):
            chunk = np.ascontiguousarray(arrays[start:start + self.batch_size])
            if chunk.shape != self._shape:
                self._interpreter.resize_tensor_input(self._input, chunk.shape)
                self._interpreter.allocate_tensors()
                self._shape = chunk.shape
            self._interpreter.set_tensor(self._input, chunk)
            self._interpreter.invoke()
            out[start:start + len(chunk)] = self._interpreter.get_tensor(self._output)
        return out


class LiteRTBackbone:
    """uint8-range images (N, S, S, 3) or (N, S, S, 1) -> float32 features
    through LiteRT.

    Grey images (every sketch) go through a one-channel copy of the network
    whose first kernel is summed over the colours: the same sums on a third of
    the input (faster, bench.features). Colour images go through the full
    network. Imports no TensorFlow, so worker processes start in a blink.
    Not thread-safe."""

    def __init__(self, colour, grey, threads, batch_size=None):
        self._colour = LiteRTRunner(colour, threads, batch_size)
        self._grey = LiteRTRunner(grey, threads, batch_size)

    @classmethod
    def from_files(cls, files, threads, batch_size=None):
        colour, grey = (open(path, "rb").read() for path in files)
        return cls(colour, grey, threads, batch_size)

    def __call__(self, arrays):
        arrays = to_uint8(arrays)
        if arrays.shape[-1] == 1:
            return self._grey(arrays)
        grey = grey_images(arrays)
        out = np.empty((len(arrays), self._colour.dim), np.float32)
        if grey.any():
            out[grey] = self._grey(arrays[grey][..., :1])
        if not grey.all():
            out[~grey] = self._colour(arrays[~grey])
        return out


class FeatureExtractor:
    """Callable: uint8-range arrays (N, S, S, 3), or grey ones (N, S, S, 1),
    -> float32 features (N, D).

    `model_files` are the checked LiteRT files (colour, grey) that worker
    processes may load, or None when the TensorFlow fallback runs. Calls are
    serialized by a lock: an interpreter is not thread-safe, and it already
    uses both cores."""

    def __init__(self, alpha, input_size, batch_size=None, threads=None):
        self.alpha, self.input_size = alpha, input_size
        self._lock = threading.Lock()
        self._litert, self.model_files = None, None
        self.engine = "tensorflow"
        self._tf = compiled(alpha, input_size)
        try:
            (colour, grey), files = _litert_models(alpha, input_size)
            self._litert = LiteRTBackbone(colour, grey, threads or LITERT_THREADS, batch_size)
        except Exception as error:  # no LiteRT on this platform, or conversion failed
            log.warning("LiteRT unavailable (%s); using TensorFlow", error)
            return
        probes = probe_images(input_size)  # grey and colour: both networks are checked
        difference = np.abs(self._litert(probes) - self._tf(probes).numpy()).max()
        if not difference <= FEATURE_TOLERANCE:
            log.warning("LiteRT features differ from Keras by %g; using TensorFlow", difference)
            self._litert = None
            return
        self.engine, self.model_files = "litert", files

    def __call__(self, arrays):
        if self._litert is None:
            arrays = np.asarray(arrays, dtype=np.float32)
            return self._tf(np.broadcast_to(arrays, arrays.shape[:-1] + (3,))).numpy()
        with self._lock:
            return self._litert(arrays)


@functools.lru_cache(maxsize=8)
def extractor(alpha, input_size):
    """The process's one FeatureExtractor per backbone, shared by every caller."""
    return FeatureExtractor(alpha, input_size)


def _litert_models(alpha, input_size):
    """((colour bytes, grey bytes), their cached files or None): the backbone
    as LiteRT taking uint8 images, converted once and cached beside the weights
    under names tied to the weights' content."""
    weights = os.path.join(keras_models_dir(), weights_filename(alpha, input_size))
    model = load_backbone(alpha, input_size)  # downloads the weights if needed
    digest = hashlib.sha256(open(weights, "rb").read()).hexdigest()[:16]
    stem = os.path.join(keras_models_dir(),
                        f"sketchlab-{weights_filename(alpha, input_size)[:-3]}-{digest}")
    colour = _cached(f"{stem}-u8.tflite", lambda: _convert_uint8(model, input_size, 3))
    grey = _cached(f"{stem}-grey-u8.tflite",
                   lambda: _convert_uint8(_grey_backbone(model, alpha, input_size), input_size, 1))
    files = (colour[1], grey[1]) if colour[1] and grey[1] else None
    return (colour[0], grey[0]), files


def _cached(path, convert):
    """(bytes, path or None when it could not be written) of a converted model."""
    if os.path.exists(path):
        with open(path, "rb") as f:
            return f.read(), path
    data = convert()
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        with open(temporary, "wb") as f:
            f.write(data)
        os.replace(temporary, path)  # atomic: concurrent processes never read half a file
    except OSError as error:
        log.warning("cannot cache %s: %s", path, error)
        return data, None
    return data, path


def _grey_backbone(model, alpha, input_size):
    """The backbone for one-channel images: for R = G = B, the first kernel
    summed over the colours gives the same sums. Every other weight is copied."""
    keras = keras_module()
    source = model.layers[-1]
    grey = keras.applications.MobileNet(
        input_shape=(input_size, input_size, 1), alpha=alpha, include_top=False,
        weights=None, pooling="avg")
    for target, layer in zip(grey.layers, source.layers):
        weights = layer.get_weights()
        if layer.name == "conv1":
            weights = [weights[0].sum(axis=2, keepdims=True)]
        target.set_weights(weights)
    inputs, scaled = _scaled_input(input_size, 1)
    return keras.Model(inputs, grey(scaled, training=False))


def _scaled_input(input_size, channels):
    """The network's input, 0-255 pixels, and the same scaled to MobileNet's [-1, 1]."""
    keras = keras_module()
    inputs = keras.Input((input_size, input_size, channels), name="image")
    return inputs, keras.layers.Rescaling(1 / 127.5, offset=-1, name="mobilenet_scale")(inputs)


def _convert_uint8(model, input_size, channels):
    """uint8 input: a quarter of the bytes to copy in, and no float conversion
    in Python (13% more images/s on one thread, bench.features)."""
    keras = keras_module()
    inputs = keras.Input((input_size, input_size, channels), dtype="uint8", name="image")
    return tflite_bytes(keras.Model(inputs, model(keras.ops.cast(inputs, "float32"))))


def tflite_bytes(model):
    """A Keras model as a LiteRT (TFLite) flatbuffer, the converter's chatter muted."""
    tf = tensorflow_module()
    # from_keras_model: converting the traced concrete function gave NaN features.
    with contextlib.redirect_stdout(io.StringIO()):
        return tf.lite.TFLiteConverter.from_keras_model(model).convert()
