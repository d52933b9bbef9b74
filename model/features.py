"""Computing backbone features once per image and view, and reading them back."""
import hashlib

import numpy as np

from model import backbone as backbones
from model.config import backbone_name
from model.errors import SketchError
from model.images import augment, decode, preprocess

FEATURE_BATCH = 128


def view_array(data, view, input_size):
    """Stored PNG bytes -> the backbone input of one view (0 = plain, else augmented)."""
    array = preprocess(decode(data), input_size)
    if view == 0:
        return array
    # Seeded by content, so a lost view is recomputed identically.
    return augment(array, seed=[view, int.from_bytes(hashlib.sha256(data).digest()[:8], "little")])


def ensure_features(store, alpha, input_size, image_ids, views, on_progress=None):
    """Compute and cache the features missing for `image_ids` x range(views).

    Each batch is committed on its own, so an interrupted run keeps what it
    computed. Returns (computed count, ids of images that could not be used).
    """
    name = backbone_name(alpha, input_size)
    missing = store.missing_features(image_ids, name, views)
    skipped = []
    done = 0
    for keys, vectors in backbones.extract_stream(
            alpha, input_size, _batches(store, missing, input_size, skipped)):
        store.put_features(name, [(i, v, vec.astype(np.float16).tobytes())
                                  for (i, v), vec in zip(keys, vectors)])
        done += len(keys)
        if on_progress:
            on_progress(done, len(missing))
    return done, skipped


def _batches(store, missing, input_size, skipped):
    for start in range(0, len(missing), FEATURE_BATCH):
        chunk = missing[start:start + FEATURE_BATCH]
        data = dict(store.image_data(sorted({i for i, _ in chunk})))
        keys, arrays = [], []
        for image_id, view in chunk:
            try:
                arrays.append(view_array(data[image_id], view, input_size))
            except (SketchError, KeyError):
                skipped.append(image_id)
                continue
            keys.append((image_id, view))
        if keys:
            yield keys, np.stack(arrays)


def load_features(store, alpha, input_size, image_ids, views):
    """{(image_id, view): float32 vector} of the cached features."""
    cached = store.features(image_ids, backbone_name(alpha, input_size), views)
    return {key: np.frombuffer(blob, dtype=np.float16).astype(np.float32)
            for key, blob in cached.items()}
