"""Background model work with progress: retraining, the first model of a
fresh database and refreshing the stored predictions, one job at a time in
one worker thread (they all use the backbone, and the machine has two cores).
Both UIs run their jobs here; the status is a plain dict that the labeler's
retrain page and /retrain/status read and the demo turns into its progress bar.
"""
import logging
import threading
import time
import traceback

from db import labeling
from db.errors import SketchError

log = logging.getLogger("sketchlab.jobs")


class Busy(SketchError):
    """A job was asked for while another one runs."""
    status = 409


def progress_text(stage, done, total):
    """What a progress report (stage, done, total) says to a person."""
    return {"seeding": "seeding the starter set",
            "seeded": f"stored {done} starter sketches",
            "features": f"computing features {done}/{total}",
            "training": f"training epoch {done} of at most {total}",
            "done": "evaluating",
            "predictions": f"scoring images {done}/{total}",
            "loading": "loading the model"}.get(stage, stage)


class Jobs:
    def __init__(self, store, train_options=None):
        self.store = store
        self.train_options = dict(train_options or {})
        self._lock = threading.Lock()
        self._thread = None
        # The exception that ended the last job, for callers that re-raise it.
        self.last_error = None
        self.status = {"state": "idle", "job": None, "stage": "", "done": 0, "total": 0,
                       "message": "", "result": None, "error": None, "started": None,
                       "finished": None, "id": 0}

    def snapshot(self):
        with self._lock:
            return dict(self.status)

    def _set(self, **changes):
        with self._lock:
            self.status.update(changes)

    def start(self, job, target):
        """Start `target(report)` in the worker; False when a job is running."""
        with self._lock:
            if self.running():
                return False
            self.status = {"state": "running", "job": job, "stage": "starting", "done": 0,
                           "total": 0, "message": "", "result": None, "error": None,
                           "started": time.time(), "finished": None,
                           "id": self.status["id"] + 1}
            self._thread = threading.Thread(target=self._run, args=(target,),
                                            name=f"job-{job}", daemon=True)
            self._thread.start()
        return True

    def running(self):
        thread = self._thread
        return thread is not None and thread.is_alive()

    def wait(self, timeout=None):
        """Wait for the current job; returns its final status."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.snapshot()

    def _run(self, target):
        self.last_error = None
        try:
            result = target(self._report)
            self._set(state="done", result=result, finished=time.time(), stage="done")
        except SketchError as error:
            self.last_error = error
            self._set(state="failed", error=str(error), finished=time.time())
        except Exception as error:  # shown on the page rather than lost in a thread
            log.error("job failed:\n%s", traceback.format_exc())
            self.last_error = error
            self._set(state="failed", error=f"{type(error).__name__}: {error}",
                      finished=time.time())

    def _report(self, stage, done, total):
        self._set(stage=stage, done=done, total=total, message=progress_text(stage, done, total))

    # -- the jobs ------------------------------------------------------------

    def retrain(self, force=False, options=None):
        """Retrain with the train options (and `options` over them); the stored
        predictions follow a version that went live."""
        def run(report):
            from model.train import retrain
            result = retrain(self.store, {**self.train_options, **(options or {})},
                             force=force, on_progress=report)
            if result["live"]:
                result["predictions"] = refresh_predictions(self.store, report)
            return result
        return self.start("retrain", run)

    def first_model(self, alpha=None):
        """Seed a fresh database with the starter set and train its first model."""
        def run(report):
            from service.starter import ensure_first_model
            return ensure_first_model(self.store, alpha=alpha, on_progress=report)
        return self.start("first-model", run)

    def refresh(self):
        def run(report):
            return {"predictions": refresh_predictions(self.store, report)}
        return self.start("predictions", run)


class LiveWatcher:
    """Keeps the stored predictions those of the live version, whichever
    process made it live (`python -m model.train`, the demo, a rollback): every
    `every` seconds it compares the live version with the one it last saw, and
    on a change (or at start) scores the images that version has not scored
    yet as a refresh job, head only on cached features (seconds for
    thousands). A change seen while another job runs waits for it."""

    def __init__(self, jobs, every):
        self.jobs, self.every = jobs, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-watcher", daemon=True)
        self.seen = None

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(self.every + 5)

    def _run(self):
        while not self._stop.is_set():
            try:
                store = self.jobs.store
                live = store.live_version_id()
                # A job that made the version live has scored its images already:
                # no new job then, whose status would replace that job's result.
                if live not in (None, self.seen) and not self.jobs.running() and (
                        not labeling.unpredicted_image_ids(store, live) or self.jobs.refresh()):
                    self.seen = live
            except SketchError as error:  # a locked or vanished file: try again later
                log.warning("watching the live version: %s", error)
            self._stop.wait(self.every)


def refresh_predictions(store, report=None, only_missing=True):
    """Score the live images the live version has not scored yet; returns how many."""
    from model.scoring import score_images
    version = store.model_version()
    if version is None:
        return 0
    ids = (labeling.unpredicted_image_ids(store, version["id"]) if only_missing
           else labeling.live_image_ids(store))
    scored = 0
    if report:
        report("predictions", 0, len(ids))
    for rows in score_images(store, version, ids,
                             lambda done, total: report and report("predictions", done, total)):
        labeling.put_predictions(store, version["id"], rows)
        scored += len(rows)
    return scored
