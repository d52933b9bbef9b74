"""Computing backbone features once per image and view, and reading them back."""
import collections
import hashlib
import multiprocessing
import os

import numpy as np

from model import backbone as backbones
from model.config import backbone_name
from db.errors import SketchError
from model.images import PREPROCESSING_VERSION, augment, decode, on_paper, preprocess

FEATURE_BATCH = 128
# Large jobs run in worker processes, one per core, each decoding, preparing
# and running a single-threaded interpreter (the interpreter holds the GIL, so
# threads would not overlap), with a lower priority so serving stays quick.
# At most 8: each worker holds its own interpreter and a few batches.
FEATURE_WORKERS = min(8, os.cpu_count() or 2)
WORKER_NICENESS = 5
POOL_MIN_FEATURES = 256
# The view that shows a sketch as a photo of it on paper reads (bench.webcam:
# taught on the canvas alone, a model reads photos of paper sketches better).
PAPER_VIEW = 1
_pool = None
_runners = {}


def views_of(data, views, input_size):
    """Stored PNG bytes -> backbone inputs of the requested views: 0 plain,
    PAPER_VIEW the sketch as read from paper by the webcam path (`on_paper`),
    others augmented. The image is decoded and preprocessed once for all."""
    array = preprocess(decode(data), input_size, keep_grey=True)
    # Seeded by content, so a lost view is recomputed identically.
    seed = int.from_bytes(hashlib.sha256(data).digest()[:8], "little")
    return [array if view == 0 else (on_paper if view == PAPER_VIEW else augment)(
        array, seed=[view, seed]) for view in views]


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
    views_missing = collections.Counter(image_id for image_id, _ in missing)
    skipped, computed, done = [], 0, 0
    for keys, vectors, bad in _computed(store, missing, alpha, input_size):
        skipped += bad
        if keys:
            store.put_features(name, [(i, v, vec.tobytes()) for (i, v), vec in zip(keys, vectors)])
        computed += len(keys)
        done += len(keys) + sum(views_missing[i] for i in bad)
        if on_progress:
            on_progress(done, len(missing))
    return computed, skipped


def _computed(store, missing, alpha, input_size):
    """(keys, float16 features, skipped ids) per chunk; large jobs in the worker
    pool, a few chunks ahead, while this process stores the results."""
    run = backbones.extractor(alpha, input_size)
    chunks = _chunks(store, missing)
    if len(missing) < POOL_MIN_FEATURES or run.model_files is None:
        for items in chunks:
            keys, arrays, skipped = prepare_chunk(items, input_size)
            yield keys, (run(arrays).astype(np.float16) if keys else None), skipped
        return
    pool, pending = _worker_pool(), collections.deque()
    for items in chunks:
        pending.append(pool.apply_async(features_chunk, (items, input_size, run.model_files)))
        if len(pending) > 2 * FEATURE_WORKERS:
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
    """(keys, backbone inputs, skipped ids) of one chunk."""
    keys, arrays, skipped = [], [], []
    for image_id, data, views in items:
        try:
            arrays += views_of(data, views, input_size)
        except SketchError:
            skipped.append(image_id)
            continue
        keys += [(image_id, view) for view in views]
    return keys, (_stack(arrays) if arrays else None), skipped


def _stack(arrays):
    """One batch; grey (one-channel) arrays widened to three only beside colour ones."""
    channels = max(a.shape[-1] for a in arrays)
    return np.stack([np.broadcast_to(a, a.shape[:-1] + (channels,)) for a in arrays])


def features_chunk(items, input_size, model_files):
    """Runs in a worker process: the float16 features of one chunk."""
    keys, arrays, skipped = prepare_chunk(items, input_size)
    if not keys:
        return keys, None, skipped
    if model_files not in _runners:
        _runners[model_files] = backbones.LiteRTBackbone.from_files(model_files, threads=1)
    return keys, _runners[model_files](arrays).astype(np.float16), skipped


def _worker_pool():
    global _pool
    if _pool is None:
        # spawn, not fork: forking a process that runs TensorFlow threads is unsafe.
        _pool = multiprocessing.get_context("spawn").Pool(
            FEATURE_WORKERS, initializer=os.nice, initargs=(WORKER_NICENESS,))
    return _pool


def feature_matrix(store, alpha, input_size, keys):
    """(float32 matrix, keys found): the cached features of those of `keys`
    [(image_id, view)] that are cached, one row each in that order. Rows are
    filled in place from the stored float16 bytes, each freed once copied, so
    the peak is about the matrix plus the bytes (no per-vector arrays)."""
    keys = list(keys)
    views = max((view for _, view in keys), default=0) + 1
    cached = store.features(list(dict.fromkeys(i for i, _ in keys)),
                            feature_key(alpha, input_size), views)
    found = [key for key in keys if key in cached]
    if not found:
        return np.zeros((0, 0), np.float32), found
    matrix = np.empty((len(found), len(cached[found[0]]) // 2), np.float32)
    for row, key in enumerate(found):
        matrix[row] = np.frombuffer(cached.pop(key), dtype=np.float16)
    return matrix, found
