"""Background work of the labeler: retraining and refreshing the stored
predictions, one job at a time in one worker thread (both use the backbone,
and the machine has two cores). The status is a plain dict, read by the
retrain page and by /retrain/status."""
import logging
import threading
import time
import traceback

from db import labeling
from db.errors import SketchError

log = logging.getLogger("sketchlab.labeler")


class Jobs:
    def __init__(self, store, train_options=None):
        self.store = store
        self.train_options = dict(train_options or {})
        self._lock = threading.Lock()
        self._thread = None
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
                                            name=f"labeler-{job}", daemon=True)
            self._thread.start()
        return True

    def running(self):
        thread = self._thread
        return thread is not None and thread.is_alive()

    def wait(self, timeout=None):
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _run(self, target):
        try:
            result = target(self._report)
            self._set(state="done", result=result, finished=time.time(), stage="done")
        except SketchError as error:
            self._set(state="failed", error=str(error), finished=time.time())
        except Exception as error:  # shown on the page rather than lost in a thread
            log.error("labeler job failed:\n%s", traceback.format_exc())
            self._set(state="failed", error=f"{type(error).__name__}: {error}",
                      finished=time.time())

    def _report(self, stage, done, total):
        messages = {"features": f"computing features {done}/{total}",
                    "training": f"training epoch {done} of at most {total}",
                    "done": "evaluating", "predictions": f"scoring images {done}/{total}"}
        self._set(stage=stage, done=done, total=total, message=messages.get(stage, stage))

    # -- the jobs ------------------------------------------------------------

    def retrain(self, force=False):
        def run(report):
            from model.train import retrain
            result = retrain(self.store, self.train_options, force=force, on_progress=report)
            if result["live"]:
                result["predictions"] = refresh_predictions(self.store, report)
            return result
        return self.start("retrain", run)

    def refresh(self):
        def run(report):
            return {"predictions": refresh_predictions(self.store, report)}
        return self.start("predictions", run)


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
