"""The live model as files that work without this project: a Keras `.keras`
file and a TFLite file, each the frozen backbone followed by the trained head.

Input: a batch of RGB images (N, S, S, 3), float32 in 0..255, S the version's
input size, prepared by `model.images.preprocess` (crop to the ink, pad
square, resize). Output: class probabilities (N, classes) in the order of
`version["classes"]` (also exported as labels.txt), calibrated as the app
shows them (the version's temperature folded into the last layer). The
novelty check ("none of my classes") is not part of the files.
"""
import os
import tempfile
import threading

_lock = threading.Lock()


def full_model(version):
    """A Keras model: images -> probabilities, backbone and head together."""
    from model.backbone import keras_module, load_backbone
    from model.head import keras_head
    keras = keras_module()
    size = version["config"]["input_size"]
    backbone = load_backbone(version["config"]["alpha"], size)
    from model.trust import temperature_of
    head = keras_head(version["head"], temperature=temperature_of(version))
    inputs = keras.Input((size, size, 3), name="image")
    outputs = head(backbone(inputs))
    return keras.Model(inputs, outputs, name=f"sketchlab_v{version['id']}")


def keras_bytes(version):
    """The `.keras` file of a version, as bytes."""
    with _lock, tempfile.TemporaryDirectory(prefix="sketchlab-export-") as folder:
        path = os.path.join(folder, "model.keras")
        full_model(version).save(path)
        with open(path, "rb") as f:
            return f.read()


def tflite_bytes(version):
    """The TFLite flatbuffer of a version, as bytes."""
    from model import backbone
    with _lock:
        return backbone.tflite_bytes(full_model(version))


def labels_text(version):
    return "".join(f"{name}\n" for name in version["classes"])
