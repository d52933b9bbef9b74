"""The model's errors: what can go wrong between an image and a prediction.
They derive from db.errors.SketchError and carry their HTTP status, except
WouldBlock, which tells a caller to answer elsewhere and is never shown."""
from db.errors import SketchError


class WouldBlock(Exception):
    """Answering needs slow work first (loading a model version or the
    look-alike index, or searching a photo for its sheet of paper: tens of
    milliseconds), and the caller asked not to wait for it: it answers on an
    event loop, where that work would hold up every request, and does it in
    a worker thread instead. Not a SketchError: nobody is told."""


class BadImage(SketchError):
    """The bytes are not an image we accept (corrupt, unknown format, too large)."""


class BlankSketch(SketchError):
    """The image has no ink: there is nothing to classify."""


class WeightsMissing(SketchError):
    """The ImageNet backbone weights are neither cached nor downloadable.
    `path` is where Keras looks for them first."""
    status = 409

    def __init__(self, message, path=None):
        super().__init__(message)
        self.path = path


class NoLiveModel(SketchError):
    """No model version has been trained yet."""
    status = 409


class NotEnoughData(SketchError):
    """Training needs more labeled images than the database holds."""
    status = 409


class NothingChanged(SketchError):
    """A retrain would learn from the very images, labels and options of the
    newest version: it would only make a copy of it."""
    status = 409


class UnknownOption(SketchError):
    """A config option that does not exist (a typo must not be silently ignored)."""
