"""The labeled training images nearest to an input ("looks like these"):
cosine similarity of backbone features, the cached plain view of each train
image. It shows the evidence behind an answer: a drawing answered "star"
beside three stars it resembles, or beside a mislabeled square that explains
a wrong answer."""
import threading

import numpy as np

from db import labeling
from model.errors import WouldBlock
from model.features import feature_matrix
from model.trust import unit_rows

# Candidates looked at per example shown: an image relabeled or deleted since
# the index was built is skipped, the next one taken.
SPARE = 4


class Neighbours:
    """One index per live version, built from the feature cache when first
    asked (features are cached by training, so images taught since the
    version trained are not in it) and reused until the version changes."""

    def __init__(self, store):
        self.store = store
        self._lock = threading.Lock()
        self._index = None  # (version id, image ids, unit feature rows)

    def _index_for(self, version, build=True):
        index = self._index
        if index is not None and index[0] == version["id"]:
            return index
        if not build:
            raise WouldBlock(f"no look-alike index of version {version['id']}")
        with self._lock:
            if self._index is None or self._index[0] != version["id"]:
                config = version["config"]
                ids = [image_id for image_id, _ in self.store.labeled_images("train")]
                matrix, found = feature_matrix(self.store, config["alpha"],
                                               config["input_size"], [(i, 0) for i in ids])
                self._index = (version["id"], np.array([i for i, _ in found], np.int64),
                               unit_rows(matrix) if len(found) else matrix)
            return self._index

    def nearest(self, version, vector, k, build=True):
        """[(image id, its label now, cosine similarity)], most similar first,
        at most `k`; WouldBlock when the version's index is not built and not
        `build`."""
        _, ids, rows = self._index_for(version, build)
        if not len(ids) or k <= 0:
            return []
        similarity = rows @ unit_rows(np.asarray(vector)[None])[0]
        count = min(len(ids), k * SPARE)
        candidates = np.argpartition(-similarity, count - 1)[:count]
        candidates = candidates[np.argsort(-similarity[candidates])]
        labels = labeling.current_labels(self.store, ids[candidates].tolist())
        return [(int(ids[i]), labels[int(ids[i])], float(similarity[i]))
                for i in candidates if int(ids[i]) in labels][:k]
