"""The live model of one database, as a long-running app serves it: the Store,
the background jobs and the Classifier, all made on first use.

On a fresh database the first job seeds the starter set and trains a first
model while the app is already served. A start that failed (weights missing,
no model yet) is retried by a request once its cause may be gone. Retrains
run as jobs too, one at a time, and the Classifier follows the live version.
"""
import enum
import logging
import os
import threading
import time

from db import Store, default_path
from db.errors import SketchError
from model.classifier import TOP_K
from model.errors import NoLiveModel, NotEnoughData, WeightsMissing, WouldBlock
from model.neighbours import Neighbours
from service import corrections
from service.jobs import Busy, Jobs

log = logging.getLogger("sketchlab.lifecycle")

# After a failed start, a request checks at most this often whether its cause
# is gone (the weights file is in place, or another process trained a model)
# and then starts again in the background.
RETRY_FAILED_START_S = 10
# How often a waiting caller passes a job's progress on.
PROGRESS_EVERY_S = 0.2
# Training examples shown beside an answer ("looks like these").
LOOKS_LIKE = 3


class Phase(str, enum.Enum):
    IDLE = "idle"            # nothing started yet
    PREPARING = "preparing"  # the first job runs: seeding, first training, loading
    READY = "ready"          # the Classifier serves the live version
    FAILED = "failed"        # `problem` says why nothing is served


class LiveModel:
    """Safe to share between threads: the Store opens a connection per thread."""

    def __init__(self, db_path=None, alpha=None):
        self.db_path = str(db_path) if db_path else default_path()
        self.alpha = alpha
        # Reentrant: start() reads the phase, which makes the jobs on first use.
        self._lock = threading.RLock()
        self._store = None
        self._jobs = None
        self._classifier = None
        self._neighbours = None
        self.problem = None     # the SketchError that keeps the model from serving
        self.retry_at = 0.0     # when a request may retry a failed start
        self.last_training = None

    @property
    def store(self):
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = Store(self.db_path)
        return self._store

    @property
    def jobs(self):
        if self._jobs is None:
            with self._lock:
                if self._jobs is None:
                    self._jobs = Jobs(self.store)
        return self._jobs

    @property
    def phase(self):
        if self._classifier is not None:
            return Phase.READY
        if self._preparing():
            return Phase.PREPARING
        return Phase.FAILED if self.problem is not None else Phase.IDLE

    def _preparing(self):
        status = self.jobs.snapshot()
        return status["state"] == "running" and status["job"] == "first-model"

    @property
    def progress(self):
        """What the running job is doing, for a person ("" when nothing runs)."""
        status = self.jobs.snapshot()
        return status["message"] if status["state"] == "running" else ""

    # -- starting ---------------------------------------------------------------

    def start(self, wait=False, again=False):
        """Prepare the model in the background (seed, first training, load);
        `again` starts anew after a failed start."""
        with self._lock:
            phase = self.phase
            if phase is Phase.IDLE or (again and phase is Phase.FAILED):
                self.problem = None
                self.jobs.start("first-model", self._prepare)
        if wait:
            self.jobs.wait()
        return self

    def wait_ready(self, timeout=None):
        self.jobs.wait(timeout)
        return self.phase is Phase.READY

    def _prepare(self, report):
        from model.classifier import Classifier
        from service.starter import ensure_first_model
        try:
            if self.store.live_version_id() is None:
                report("seeding", 0, 0)
                self.last_training = ensure_first_model(self.store, alpha=self.alpha,
                                                        on_progress=report)
            report("loading", 0, 0)
            self._classifier = Classifier(self.store)
        except SketchError as error:
            log.warning("model unavailable: %s", error)
            self._failed(error)
            raise
        except Exception as error:  # shown on the page rather than lost in a thread
            log.exception("preparing the model failed")
            self._failed(SketchError(f"Preparing the model failed: {type(error).__name__}: "
                                     f"{error}"))
            raise

    def _failed(self, problem):
        self.problem = problem
        self.retry_at = time.monotonic() + RETRY_FAILED_START_S

    def retry_if_due(self):
        """After a failed start, start again once its cause may be gone: the
        missing weights file is in place, or another process trained a model.
        Checked at most every RETRY_FAILED_START_S (a stat or one query)."""
        if self.phase is not Phase.FAILED or time.monotonic() < self.retry_at:
            return
        self.retry_at = time.monotonic() + RETRY_FAILED_START_S
        weights = getattr(self.problem, "path", None)
        if os.path.exists(weights) if weights else self.store.live_version_id() is not None:
            self.start(again=True)

    # -- serving --------------------------------------------------------------------

    def classifier(self):
        """The Classifier, or the SketchError saying why there is none (never random weights)."""
        if self.phase is Phase.IDLE:
            self.start(wait=True)
        self.retry_if_due()
        if self._classifier is not None:
            return self._classifier
        if self.problem is not None:
            raise type(self.problem)(str(self.problem))
        raise NoLiveModel("The first model is still being trained on the starter sketches "
                          f"({self.progress or 'starting'}); this takes under a minute. "
                          "Try again shortly.")

    def classify(self, image):
        return self.classifier().classify(image, k=TOP_K)

    def classify_seen(self, image, track=None):
        """(the answer, the preprocessed array the network saw); `track`: a
        `model.sheet.Track` of a live stream."""
        return self.classifier().classify_seen(image, k=TOP_K, track=track)

    def classify_shown(self, image, track=None, block=True):
        """(the answer, what the network saw, the LOOKS_LIKE labeled training
        images nearest to it: [(image id, label, cosine similarity)]). Not
        `block`: WouldBlock rather than starting, loading a version,
        building its look-alike index or searching a photo for its sheet
        first."""
        if not block and self._classifier is None:
            raise WouldBlock("no model is loaded")
        classifier = self.classifier()
        answer, seen, vector = classifier.classify_features(image, k=TOP_K, track=track,
                                                            block=block)
        if self._neighbours is None:
            self._neighbours = Neighbours(self.store)
        return answer, seen, self._neighbours.nearest(classifier.version, vector, LOOKS_LIKE,
                                                      build=block)

    def prediction_or_none(self, image):
        """The live model's answer, or None while there is no model to ask."""
        try:
            return self.classify(image)
        except (NoLiveModel, WeightsMissing, NotEnoughData):
            return None

    def correct(self, image, label, source, sender, accept=False, prediction=None):
        """Store a correction; corrections are collected even without a model."""
        return corrections.record(self.store, image, label, source, sender,
                                  prediction=prediction, predict=self.prediction_or_none,
                                  accept=accept)

    # -- retraining -------------------------------------------------------------------

    def retrain(self, on_progress=None):
        """Retrain as a job and wait for it, passing its progress on; the new
        version is served at once when it goes live. Busy while a job runs."""
        live = self.store.live_version_id() is not None
        options = {"alpha": self.alpha} if self.alpha and not live else {}
        if not self.jobs.retrain(options=options):
            raise Busy("A training is already running; wait for it to finish.")
        status = self._follow(on_progress)
        if status["state"] != "done":
            error = self.jobs.last_error
            raise error if isinstance(error, SketchError) else SketchError(status["error"])
        result = status["result"]
        self.last_training = result
        if self._classifier is None:
            from model.classifier import Classifier
            self._classifier = Classifier(self.store)
        else:
            self._classifier.refresh()
        return result

    def _follow(self, on_progress):
        seen = None
        while True:
            status = self.jobs.wait(PROGRESS_EVERY_S)
            step = (status["stage"], status["done"], status["total"])
            if on_progress and step != seen:
                on_progress(*step)
                seen = step
            if status["state"] != "running":
                return status
