"""The one block of training defaults. A model version saves the full config it
was trained with; an option not listed here is an error, never ignored."""
from model.errors import UnknownOption

DEFAULTS = {
    # Backbone: Keras MobileNet v1, ImageNet weights, frozen, global-average pooled.
    # Width multiplier 0.25 / 0.5 / 0.75 / 1.0. The article used 1.0; 0.25 is
    # within a point or two of it here (drawings, webcam photos) at an eighth
    # of the CPU a frame and a sixth of the cold retrain (docs/PERFORMANCE.md).
    "alpha": 0.25,
    "input_size": 224,      # 128 / 160 / 192 / 224 pixels a side
    # Feature cache: view 0 is the plain image, view 1 the sketch as the webcam
    # reads it from paper (model.images.on_paper), views 2.. augmented copies.
    "views": 3,
    # Head: dense layers (ReLU, dropout) then softmax, as the article's, but
    # narrower. Chosen on cached dev-set features (8 classes, 3 seeds, with
    # the label smoothing and early-stopping rule below; docs/PERFORMANCE.md,
    # "Few examples a class"): one layer of 512 reaches 0.836 / 0.865 / 0.903
    # / 0.926 / 0.940 at 5 / 10 / 30 / 100 / 300 drawings a class, 256-128-64
    # 0.832 / 0.860 / 0.893 / 0.921 / 0.937 in the same time, 512-256 no
    # better in twice the time; the article's 1024-1024-512 took 41 s to reach
    # 0.905 at 300 (a one-off measurement, "Head widths").
    "head_units": [512],
    "dropout": 0.2,
    # Label smoothing: targets give this share of the true class's
    # probability evenly to every class. At 10 / 30 a class 0.860 / 0.893
    # against 0.849 / 0.890 without; at 300, 0.937 against 0.924 (256-128-64).
    # It leaves the head under-confident, which the temperature fitted at
    # each retrain undoes (model.trust); a retrain with too few held-out
    # images to fit one (below 10 a class) trains on plain targets instead:
    # at 5 a class, calibration error 0.075 against 0.190 smoothed, for 0.829
    # against 0.836 accuracy.
    "label_smoothing": 0.1,
    # Early stopping only from this many train images a class (on average).
    # Below it, its validation split (a tenth: a few images a class) stops
    # training too soon, so the head trains `epochs` epochs on every image:
    # 0.893 against 0.884 with early stopping at 30 a class, 0.914 against
    # 0.902 at 50; at 100, 0.914 against 0.921 (256-128-64; model.train keeps
    # the split for calibration).
    "early_stopping_per_class": 100,
    "epochs": 60,           # with early stopping an upper bound; without, the count
    "max_samples": 150_000, # samples shown per training (>= 3 epochs): keeps time linear in data
    "patience": 6,          # epochs without validation improvement before stopping
    "batch_size": 64,
    "learning_rate": 0.002,
    "validation_fraction": 0.1,
    "warm_start": True,     # from the live head when classes and shape match; with early stopping
    "seed": 0,
}

ALPHAS = (0.25, 0.5, 0.75, 1.0)
INPUT_SIZES = (128, 160, 192, 224)


def make_config(base=None, **overrides):
    """DEFAULTS, then `base` (e.g. a saved config), then the overrides, checked."""
    config = dict(DEFAULTS)
    for layer in (base or {}, overrides):
        unknown = sorted(set(layer) - set(DEFAULTS))
        if unknown:
            raise UnknownOption(f"Unknown option(s): {', '.join(unknown)}. "
                                f"Known: {', '.join(sorted(DEFAULTS))}.")
        config.update({k: v for k, v in layer.items() if v is not None})
    config["alpha"] = float(config["alpha"])
    config["head_units"] = [int(u) for u in config["head_units"]]
    if config["alpha"] not in ALPHAS:
        raise UnknownOption(f"alpha must be one of {ALPHAS}, not {config['alpha']}.")
    if config["input_size"] not in INPUT_SIZES:
        raise UnknownOption(f"input_size must be one of {INPUT_SIZES}, not {config['input_size']}.")
    if not 0 <= config["label_smoothing"] < 1:
        raise UnknownOption(f"label_smoothing must be in [0, 1), not {config['label_smoothing']}.")
    if config["views"] < 1:
        raise UnknownOption("views must be at least 1 (the plain image).")
    return config


def backbone_name(alpha, input_size):
    """The key under which features of this backbone are cached."""
    return f"mobilenet_v1_{alpha:g}_{input_size}"
