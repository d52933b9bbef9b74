"""Serving: the live model version, loaded once and reused by the demo, the
labeler and `python -m model.predict`."""
import threading
from dataclasses import dataclass, replace

import numpy as np

from model import trust
from model.errors import NoLiveModel, WouldBlock
from model.images import preprocess

TOP_K = 3


@dataclass(frozen=True)
class _Loaded:
    version: dict
    run: object


class Classifier:
    """Classifies images with whatever version is live, switching atomically
    when another process or thread makes a new version live."""

    def __init__(self, store):
        self.store = store
        self._lock = threading.Lock()
        self._loaded = None
        self.refresh()

    def refresh(self, load=True):
        """Load the live version if it changed, and take its class names as they
        are now (a class renamed in the labeler). Cheap when nothing changed (one
        query); WouldBlock instead of any change when not `load`."""
        live = self.store.live_version_names()
        if live is None:
            raise NoLiveModel("No model has been trained yet: label some images and run "
                              "python -m model.train (or press Retrain).")
        live_id, names = live
        loaded = self._loaded
        if loaded is not None and (loaded.version["id"], loaded.version["classes"]) == live:
            return loaded.version  # the common case: no lock taken on the request path
        if not load:
            raise WouldBlock(f"version {live_id} is not loaded")
        with self._lock:
            if self._loaded is None or self._loaded.version["id"] != live_id:
                self._loaded = _load(self.store.model_version(live_id))
            elif self._loaded.version["classes"] != names:
                self._loaded = replace(self._loaded,
                                       version={**self._loaded.version, "classes": names})
        return self._loaded.version

    @property
    def version(self):
        return self._loaded.version

    def probabilities(self, arrays):
        """(version, calibrated probabilities (N, classes), [{"unknown",
        "unknown_score"}] per array, backbone features (N, D)) for
        preprocessed uint8 arrays."""
        loaded = self._loaded
        return (loaded.version, *loaded.run(arrays))

    def classify(self, image, k=TOP_K):
        """Any image -> {"label", "confidence", "top": [[label, p], ...], "unknown",
        "unknown_score", "version"} (see `describe`).

        Raises BlankSketch for an image without ink and BadImage for one that
        cannot be read."""
        return self.classify_seen(image, k)[0]

    def classify_seen(self, image, k=TOP_K, track=None):
        """(the answer, the preprocessed array the network saw); `track`
        follows the sheet from frame to frame of a live stream (`preprocess`)."""
        return self.classify_features(image, k, track)[:2]

    def classify_features(self, image, k=TOP_K, track=None, block=True):
        """(the answer, what the network saw, its backbone features). Not
        `block`: WouldBlock when the live version is not the one loaded or
        the image is a photo to search for its sheet (`preprocess`)."""
        self.refresh(block)
        size = self._loaded.version["config"]["input_size"]
        seen = preprocess(image, size, keep_grey=True, track=track, block=block)
        version, probabilities, novelty, vectors = self.probabilities(seen[None])
        return describe(probabilities[0], version["classes"], version["id"], k,
                        novelty[0]), seen, vectors[0]


def ranked(probabilities, classes, k=None):
    """[[class, p], ...], most likely first: the first `k`, or all of them."""
    order = np.argsort(probabilities)[::-1][:k]
    return [[classes[i], round(float(probabilities[i]), 6)] for i in order]


def describe(probabilities, classes, version, k=TOP_K, novelty=trust.NO_REFERENCE):
    """The answer: top-k calibrated classes, and whether the input looks like
    none of them (`unknown`, with its `unknown_score`: above 1 is unknown)."""
    top = ranked(probabilities, classes, max(1, k))
    return {"label": top[0][0], "confidence": top[0][1], "top": top, **novelty,
            "version": version}


def _load(version):
    from model.backbone import extractor
    from model.head import NumpyHead
    config = version["config"]
    features = extractor(config["alpha"], config["input_size"])
    head = NumpyHead(version["head"])
    temperature = trust.temperature_of(version)
    threshold = trust.threshold_of(version)

    def run(arrays):
        vectors = features(arrays)
        return (trust.calibrate(head(vectors), temperature),
                trust.judged(head.reference, threshold, vectors), vectors)
    # Load and warm up now, not on the first user's request.
    run(np.full((1, config["input_size"], config["input_size"], 3), 255, np.float32))
    return _Loaded(version=version, run=run)
