"""Computing backbone features once per image and view, and reading them back."""
import collections
import hashlib
import multiprocessing
import os

import numpy as np

from model import backbone as backbones
from model.config import backbone_name
from model.errors import SketchError
from model.images import PREPROCESSING_VERSION, augment, decode, preprocess

FEATURE_BATCH = 128
# Worker processes that decode and preprocess while the network runs (the
# interpreter takes one core), and the smallest job worth starting them for.
PREP_WORKERS = max(1, (os.cpu_count() or 2) - 1)
POOL_MIN_FEATURES = 256
_pool = None


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
    run = backbones.extractor(alpha, input_size, threads=backbones.BULK_THREADS)
    views_missing = collections.Counter(image_id for image_id, _ in missing)
    skipped, computed, done = [], 0, 0
    for keys, arrays, bad in _prepared(store, missing, input_size):
        skipped += bad
        if keys:
            store.put_features(name, [(i, v, vec.astype(np.float16).tobytes())
                                      for (i, v), vec in zip(keys, run(arrays))])
        computed += len(keys)
        done += len(keys) + sum(views_missing[i] for i in bad)
        if on_progress:
            on_progress(done, len(missing))
    return computed, skipped


def _prepared(store, missing, input_size):
    """(keys, arrays, skipped ids) batches of backbone inputs.

    The LiteRT interpreter holds the GIL while it runs, so preparing images in
    a thread would not overlap with it: large jobs are prepared in worker
    processes, a few batches ahead, while this process runs the network.
    """
    chunks = _chunks(store, missing)
    if len(missing) < POOL_MIN_FEATURES:
        for items in chunks:
            yield prepare_chunk(items, input_size)
        return
    pool, pending = _worker_pool(), collections.deque()
    for items in chunks:
        pending.append(pool.apply_async(prepare_chunk, (items, input_size)))
        if len(pending) > 2 * PREP_WORKERS:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


def _chunks(store, missing):
    """Lists of (image_id, PNG bytes, views), about FEATURE_BATCH views each."""
    by_image = {}
    for image_id, view in missing:
        by_image.setdefault(image_id, []).append(view)
    images = list(by_image)
    per_chunk = max(1, FEATURE_BATCH // max(len(v) for v in by_image.values()))
    for start in range(0, len(images), per_chunk):
        yield [(image_id, data, by_image[image_id])
               for image_id, data in store.image_data(images[start:start + per_chunk])]


def prepare_chunk(items, input_size):
    """Runs in a worker process: the backbone inputs of one chunk."""
    keys, arrays, skipped = [], [], []
    for image_id, data, views in items:
        try:
            arrays += views_of(data, views, input_size)
        except SketchError:
            skipped.append(image_id)
            continue
        keys += [(image_id, view) for view in views]
    return keys, (np.stack(arrays) if arrays else None), skipped


def _worker_pool():
    global _pool
    if _pool is None:
        # spawn, not fork: forking a process that runs TensorFlow threads is unsafe.
        _pool = multiprocessing.get_context("spawn").Pool(PREP_WORKERS)
    return _pool


def load_features(store, alpha, input_size, image_ids, views):
    """{(image_id, view): float32 vector} of the cached features."""
    cached = store.features(image_ids, feature_key(alpha, input_size), views)
    return {key: np.frombuffer(blob, dtype=np.float16).astype(np.float32)
            for key, blob in cached.items()}
