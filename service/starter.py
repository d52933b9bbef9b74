"""The first run of a fresh database: a small starter set of procedurally drawn
sketches (model.sketches, nothing downloaded) and a first model trained on it,
so the demo classifies something within its first minute.

`ensure_first_model` is idempotent: it seeds only a database without images
and trains only when no version is live. Seeding twice (two processes on one
fresh file) stores nothing twice, because the drawings are seeded and images
are de-duplicated by content.
"""
from db import Store
from model.sketches import SHAPES, dataset
from service.ingest import store_generated

STARTER_TRAIN_PER_CLASS = 30
STARTER_TEST_PER_CLASS = 10
# The test split is drawn with STARTER_SEED + 1: no drawing is in both.
STARTER_SEED = 2024
# Few augmented views keep the first training well under a minute on 2 cores.
STARTER_OPTIONS = {"views": 2}
LABELED_BY = "starter"


def starter_drawings(train_per_class=STARTER_TRAIN_PER_CLASS,
                     test_per_class=STARTER_TEST_PER_CLASS, seed=STARTER_SEED, shapes=SHAPES):
    """The starter set as (image, split, label) triples."""
    return [(image, split, shape)
            for split, per_class, split_seed in (("train", train_per_class, seed),
                                                 ("test", test_per_class, seed + 1))
            for shape, image in dataset(per_class, seed=split_seed, shapes=shapes)]


def seed_starter_set(store, **kwargs):
    """Store the starter set; returns how many images were new."""
    return store_generated(store, starter_drawings(**kwargs), LABELED_BY)


def needs_first_model(store):
    return store.live_version_id() is None


def ensure_first_model(store, alpha=None, on_progress=None, options=None):
    """Seed a database without images, then train when no version is live.

    Returns None when a version was already live, else the retrain summary.
    Raises WeightsMissing (backbone weights unavailable) or NotEnoughData (a
    database that has images but too few labeled ones) for the caller to show.
    """
    if not needs_first_model(store):
        return None
    seeded = 0
    if store.count_images() == 0:
        seeded = seed_starter_set(store)
        if on_progress:
            on_progress("seeded", seeded, seeded)
    from model.train import retrain
    opts = dict(STARTER_OPTIONS)
    if alpha is not None:
        opts["alpha"] = alpha
    opts.update(options or {})
    result = retrain(store, opts, on_progress=on_progress)
    result["seeded_images"] = seeded
    return result


def main(argv=None):
    """python -m service.starter [--db PATH] [--alpha A]: seed and train the first model."""
    import argparse
    import json
    from db.cli import add_db_option, exit_on_error
    parser = argparse.ArgumentParser(prog="python -m service.starter", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_db_option(parser)
    parser.add_argument("--alpha", type=float, default=None,
                        help="backbone width for the first training (default: config default)")
    args = parser.parse_args(argv)
    with exit_on_error():
        result = ensure_first_model(Store(args.db), alpha=args.alpha)
    print(json.dumps(result if result is not None else {"live": "already"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
