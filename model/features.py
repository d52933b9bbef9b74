"""Computing backbone features once per image and view, and reading them back."""
import hashlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from model import backbone as backbones
from model.config import backbone_name
from model.errors import SketchError
from model.images import PREPROCESSING_VERSION, augment, decode, preprocess

FEATURE_BATCH = 128


def views_of(data, views, input_size):
    """Stored PNG bytes -> backbone inputs of the requested views (0 = plain,
    others augmented). The image is decoded and preprocessed once for all."""
    array = preprocess(decode(data), input_size)
    # Seeded by content, so a lost view is recomputed identically.
    seed = int.from_bytes(hashlib.sha256(data).digest()[:8], "little")
    return [array if view == 0 else augment(array, seed=[view, seed]) for view in views]


def feature_key(alpha, input_size):
    """What cached features are filed under: the network and the preprocessing."""
    return f"{backbone_name(alpha, input_size)}/p{PREPROCESSING_VERSION}"


def ensure_features(store, alpha, input_size, image_ids, views, on_progress=None):
    """Compute and cache the features missing for `image_ids` x range(views).

    Each batch is committed on its own, so an interrupted run keeps what it
    computed. Returns (computed count, ids of images that could not be used).
    """
    name = feature_key(alpha, input_size)
    missing = store.missing_features(image_ids, name, views)
    if not missing:
        return 0, []
    skipped = []
    done = 0
    for keys, vectors in extract_stream(
            alpha, input_size, _batches(store, missing, input_size, skipped)):
        store.put_features(name, [(i, v, vec.astype(np.float16).tobytes())
                                  for (i, v), vec in zip(keys, vectors)])
        done += len(keys)
        if on_progress:
            on_progress(done, len(missing))
    return done, skipped


def extract_stream(alpha, input_size, batches):
    """Features for an iterable of (keys, arrays) batches. The next batch is
    decoded and preprocessed in a worker thread while the current one runs
    through the network."""
    run = backbones.extractor(alpha, input_size, threads=backbones.BULK_THREADS)
    with ThreadPoolExecutor(max_workers=1) as pool:
        iterator = iter(batches)
        pending = pool.submit(next, iterator, None)
        while True:
            batch = pending.result()
            if batch is None:
                return
            pending = pool.submit(next, iterator, None)
            keys, arrays = batch
            yield keys, run(arrays)


def _batches(store, missing, input_size, skipped):
    by_image = {}
    for image_id, view in missing:
        by_image.setdefault(image_id, []).append(view)
    images = list(by_image)
    per_batch = max(1, FEATURE_BATCH // max(len(v) for v in by_image.values())) if images else 1
    for start in range(0, len(images), per_batch):
        chunk = images[start:start + per_batch]
        keys, arrays = [], []
        for image_id, data in store.image_data(chunk):
            try:
                arrays += views_of(data, by_image[image_id], input_size)
            except SketchError:
                skipped.append(image_id)
                continue
            keys += [(image_id, view) for view in by_image[image_id]]
        if keys:
            yield keys, np.stack(arrays)


def load_features(store, alpha, input_size, image_ids, views):
    """{(image_id, view): float32 vector} of the cached features."""
    cached = store.features(image_ids, feature_key(alpha, input_size), views)
    return {key: np.frombuffer(blob, dtype=np.float16).astype(np.float32)
            for key, blob in cached.items()}
