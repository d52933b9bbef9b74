"""python -m bench.accuracy: test accuracy against examples per class.

Quick, Draw! dev set, alpha 0.25, the fixed test split (last 300 of each
class); training uses the first 10, 30, 100 and 300 drawings of each class,
through the same `model.train.retrain` as the product (features cached once,
no warm start, so each point is an independent training; the head's figure
is the mean of --seeds heads). At each size two baselines are fitted on the
same cached features in the same run, and the head's mean is compared with
the better one: the few-shot target is met at 5, 10 and 30 a class when the
head is at least as accurate there. Also compares a head trained on float32
features with one on the same features rounded to float16, as the cache
stores them. Writes a learning curve plot (artifacts/accuracy.png, or --plot
PATH) and prints, as its last line, one JSON object.

`--per-class 5,10,30,300` measures the few-shot target; `--per-class
700,500,300` goes past the benchmark's 300 (the dev set has 1,000 drawings a
class; the last 300 stay the test split) to show where the backbone's
features level off."""
import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from bench.common import (ALPHA, ARTIFACTS, INPUT_SIZE, TEST_PER_CLASS, fill_store, machine,
                          quickdraw, setup)

PER_CLASS = "300,100,30,10"
DEV_PER_CLASS = 1000
TARGET_AT_300 = 0.95  # the target, drawn on the plot
# Sizes (drawings a class) where the head must be at least as accurate as the
# better baseline (issue 13, "Few-shot"); other sizes are compared, not judged.
FEW_SHOT_SIZES = (5, 10, 30)
SEEDS = 3


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.accuracy", description=__doc__)
    parser.add_argument("--views", type=int, default=3, help="feature views per train image")
    parser.add_argument("--per-class", default=PER_CLASS,
                        help=f"training drawings per class, comma-separated (default "
                             f"{PER_CLASS}; at most {DEV_PER_CLASS - TEST_PER_CLASS})")
    parser.add_argument("--seeds", type=int, default=SEEDS,
                        help=f"heads trained per point (seeds 0..N-1); the mean is reported "
                             f"(default {SEEDS})")
    parser.add_argument("--plot", default=str(ARTIFACTS / "accuracy.png"),
                        help="where to write the learning curve (default: artifacts/accuracy.png)")
    args = parser.parse_args(argv)
    try:
        sizes = sorted({int(n) for n in args.per_class.split(",")}, reverse=True)
    except ValueError:
        sizes = [0]
    if not 1 <= sizes[-1] <= sizes[0] <= DEV_PER_CLASS - TEST_PER_CLASS or args.seeds < 1:
        parser.error(f"--per-class takes 1..{DEV_PER_CLASS - TEST_PER_CLASS}; --seeds at least 1")
    setup()
    from db import Store
    from model.train import retrain

    rows = quickdraw(train_per_class=sizes[0])
    store = Store(Path(tempfile.mkdtemp(prefix="sketchlab-bench-")) / "bench.db")
    ids = fill_store(store, rows)
    accuracy, by_seed, baselines = {}, {}, {}
    for per_class in sizes:
        rank, drop = {}, []
        for image_id, (label, split, _) in zip(ids, rows):
            if split == "train":
                rank[label] = rank.get(label, 0) + 1
                if rank[label] > per_class:
                    drop.append(image_id)
        store.remove_labels(drop)
        by_seed[per_class] = []
        for seed in range(args.seeds):
            options = {"alpha": ALPHA, "views": args.views, "warm_start": False, "seed": seed}
            result = retrain(store, options, force=True)
            by_seed[per_class].append(round(result["test_accuracy"], 4))
            print(f"{per_class:>4} per class, seed {seed}: accuracy {by_seed[per_class][-1]:.4f} "
                  f"({result['train_images']} train images, {result['seconds']:.1f} s)",
                  flush=True)
        accuracy[per_class] = round(float(np.mean(by_seed[per_class])), 4)
        baselines[per_class] = _baselines(store)
        print(f"{per_class:>4} per class, baselines on the same features: "
              + ", ".join(f"{name} {value:.4f}" for name, value in baselines[per_class].items()),
              flush=True)
    comparison = {n: compare(accuracy[n], baselines[n], n) for n in sorted(accuracy)}
    print(comparison_table(comparison), flush=True)
    judged = [c["met"] for c in comparison.values() if c["met"] is not None]
    precision = _float16_check(rows)
    _plot(accuracy, args.plot)
    print(json.dumps({"accuracy": {str(k): v for k, v in sorted(accuracy.items())},
                      "accuracy_by_seed": {str(k): v for k, v in sorted(by_seed.items())},
                      "baselines": {str(k): v for k, v in sorted(baselines.items())},
                      "head_vs_baselines": {str(k): v for k, v in comparison.items()},
                      "few_shot_target_met": all(judged) if judged else None,
                      "seeds": args.seeds,
                      "float16_vs_float32_at_100": precision, "views": args.views,
                      "alpha": ALPHA, "plot": args.plot, "machine": machine()}))


def compare(head, baselines, per_class):
    """The head's mean accuracy against each baseline at one size: the
    differences, the better baseline, and whether the few-shot target is met
    (None at a size the target does not judge)."""
    best = max(baselines, key=baselines.get)
    return {"head": head, **baselines,
            "head_minus": {name: round(head - value, 4) for name, value in baselines.items()},
            "better_baseline": best,
            "at_least_as_accurate": head >= baselines[best],
            "met": (head >= baselines[best]) if per_class in FEW_SHOT_SIZES else None}


def comparison_table(comparison):
    """Per size: the head's mean, each baseline (and the head's lead over it),
    and the verdict."""
    names = [n for n in next(iter(comparison.values())) if n not in
             ("head", "head_minus", "better_baseline", "at_least_as_accurate", "met")]
    lines = ["per class | head (mean) | " + " | ".join(names) + " | target: head >= better"]
    for size, c in comparison.items():
        verdict = {True: "met", False: "NOT met", None: "(not judged) "
                   + ("ahead" if c["at_least_as_accurate"] else "behind")}[c["met"]]
        lines.append(f"{size:>9} | {c['head']:.4f}      | " + " | ".join(
            f"{c[n]:.4f} ({c['head_minus'][n]:+.4f})" for n in names) + f" | {verdict}")
    return "\n".join(lines)


def _baselines(store):
    """Test accuracy of two plain classifiers on the same cached features as
    the head (the plain view: cross-validation must not split an image's views
    across folds): a logistic regression whose regularization is chosen by
    stratified cross-validation (scikit-learn's LogisticRegressionCV on
    standardized features), and the nearest class mean by cosine."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from model.features import feature_matrix
    from model.trust import unit_rows
    train, test = store.labeled_images("train"), store.labeled_images("test")
    labels = dict(train + test)
    x, found = feature_matrix(store, ALPHA, INPUT_SIZE, [(i, 0) for i, _ in train])
    xt, found_t = feature_matrix(store, ALPHA, INPUT_SIZE, [(i, 0) for i, _ in test])
    y = np.array([labels[i] for i, _ in found])
    yt = np.array([labels[i] for i, _ in found_t])
    smallest = min(np.unique(y, return_counts=True)[1])
    logistic = make_pipeline(StandardScaler(), LogisticRegressionCV(
        Cs=10, cv=int(min(5, smallest)), max_iter=2000))
    logistic.fit(x, y)
    classes = sorted(set(y))
    means = unit_rows(np.stack([unit_rows(x[y == c]).mean(axis=0) for c in classes]))
    nearest = np.array(classes)[(unit_rows(xt) @ means.T).argmax(axis=1)]
    return {"logistic regression (CV)": round(float((logistic.predict(xt) == yt).mean()), 4),
            "nearest class mean": round(float((nearest == yt).mean()), 4)}


def _float16_check(rows, per_class=100):
    """Accuracy of one head trained and tested on float32 features and on the
    same features rounded to float16, as the feature cache stores them."""
    from PIL import Image
    from model.backbone import extractor
    from model.config import make_config
    from model.head import forward, train_head
    from model.images import preprocess
    classes = sorted({label for label, _, _ in rows})
    seen, picked = {}, {"train": [], "test": []}
    for label, split, pixels in rows:
        seen[(label, split)] = seen.get((label, split), 0) + 1
        if split == "test" or seen[(label, split)] <= per_class:
            picked[split].append((classes.index(label),
                                  preprocess(Image.fromarray(pixels), INPUT_SIZE)))
    run = extractor(ALPHA, INPUT_SIZE)
    data = {split: (run(np.stack([a for _, a in items])), np.asarray([c for c, _ in items]))
            for split, items in picked.items()}
    results = {}
    for dtype in ("float32", "float16"):
        x, y = (data["train"][0].astype(dtype).astype(np.float32), data["train"][1])
        xt, yt = (data["test"][0].astype(dtype).astype(np.float32), data["test"][1])
        params, _ = train_head(x, y, len(classes), make_config())
        results[dtype] = round(float((forward(params, xt)[0].argmax(1) == yt).mean()), 4)
    return results


def _plot(accuracy, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    sizes = sorted(accuracy)
    figure, axes = plt.subplots(figsize=(5, 3.2), dpi=120)
    axes.plot(sizes, [accuracy[s] for s in sizes], marker="o")
    for s in sizes:
        axes.annotate(f"{accuracy[s]:.3f}", (s, accuracy[s]), textcoords="offset points",
                      xytext=(0, -14), ha="center", fontsize=8)
    axes.axhline(TARGET_AT_300, color="grey", linestyle="--", linewidth=1)
    axes.annotate(f"target at 300: {TARGET_AT_300}", (sizes[0], TARGET_AT_300),
                  textcoords="offset points", xytext=(0, 4), fontsize=8, color="grey")
    axes.set_xscale("log")
    axes.minorticks_off()
    axes.set_xticks(sizes, [str(s) for s in sizes])
    axes.set_xlabel("training drawings per class")
    axes.set_ylabel("test accuracy (8 classes)")
    axes.set_ylim(0.5, 1.0)
    axes.grid(alpha=0.3)
    axes.set_title("Quick, Draw! dev set, MobileNet alpha 0.25")
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)


if __name__ == "__main__":
    main()
