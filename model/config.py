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
    # narrower: on cached features the article's 1024-1024-512 took 41 s to
    # reach 0.905, this one 2.8 s to reach 0.933 (docs/PERFORMANCE.md, "Head
    # widths": a one-off measurement that no bench module repeats).
    "head_units": [256, 128, 64],
    "dropout": 0.2,
    "epochs": 60,           # an upper bound: early stopping usually ends sooner
    "max_samples": 150_000, # samples shown per training (>= 3 epochs): keeps time linear in data
    "patience": 6,          # epochs without validation improvement before stopping
    "batch_size": 64,
    "learning_rate": 0.002,
    "validation_fraction": 0.1,
    "warm_start": True,     # start from the live head when classes and shape match
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
    if config["views"] < 1:
        raise UnknownOption("views must be at least 1 (the plain image).")
    return config


def backbone_name(alpha, input_size):
    """The key under which features of this backbone are cached."""
    return f"mobilenet_v1_{alpha:g}_{input_size}"
