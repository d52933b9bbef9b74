"""Retraining and rescoring in the background, the model versions, their
pictures and confusion cells, and making a version live."""
import json
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse

from db import labeling
from db.errors import NotFound
from labeler.settings import settings
from labeler.web import (CheckedForm, Confusions, SharedJobs, SharedStore, png_response, redirect,
                         render)
from model.errors import NoLiveModel

router = APIRouter()


@router.get("/retrain", response_class=HTMLResponse)
def retrain_page(request: Request, jobs: SharedJobs):
    return render(request, "retrain.html", job=jobs.snapshot(), options=jobs.train_options)


@router.get("/live")
def live_version(store: SharedStore):
    """The live version's id (null before the first): pages compare it with
    the one they show and say when another process made a new one live."""
    return JSONResponse({"live": store.live_version_id(),
                         "pending": labeling.pending_count(store)})


@router.get("/retrain/status")
def retrain_status(jobs: SharedJobs):
    return JSONResponse(jobs.snapshot())


@router.post("/retrain")
def retrain_post(request: Request, jobs: SharedJobs, form: CheckedForm):
    if not jobs.retrain(force=bool(form.get("force"))):
        return redirect(request, "/retrain", "A job is already running; wait for it to finish.",
                        kind="warn")
    return redirect(request, "/retrain")


@router.post("/predictions/refresh")
def predictions_refresh(request: Request, store: SharedStore, jobs: SharedJobs,
                        form: CheckedForm):
    if store.live_version_id() is None:
        raise NoLiveModel("No model has been trained yet: press Retrain first.")
    if not jobs.refresh():
        return redirect(request, "/retrain", "A job is already running; wait for it to finish.",
                        kind="warn")
    return redirect(request, "/retrain")


@router.get("/versions", response_class=HTMLResponse)
def versions(request: Request, store: SharedStore):
    return render(request, "versions.html", versions=store.model_versions())


def _version(store, version_id):
    version = store.model_version(version_id)
    if version is None:
        raise NotFound(f"There is no model version {version_id}.")
    return version


def _confusion(version):
    return version["metrics"].get("confusion") or {"labels": [], "matrix": []}


def _confusion_png(pictures, confusion):
    """(PNG bytes, cell rectangles) of a confusion matrix, kept under its JSON
    (a renamed class gives a new key)."""
    from model.plots import confusion_png
    return pictures.get_or_make(
        json.dumps(confusion), lambda: confusion_png(confusion["labels"], confusion["matrix"]))


@router.get("/versions/{version_id}", response_class=HTMLResponse)
def version_page(request: Request, version_id: int, store: SharedStore, pictures: Confusions):
    version = _version(store, version_id)
    confusion = _confusion(version)
    _, cells = _confusion_png(pictures, confusion)
    labels = confusion["labels"]
    return render(request, "version.html", version=version, metrics=version["metrics"],
                  cells=[{"truth": labels[r], "predicted": labels[c],
                          "count": confusion["matrix"][r][c],
                          "coords": f"{x0},{y0},{x1},{y1}",
                          "href": f"/versions/{version_id}/cell?" + urlencode(
                              {"truth": labels[r], "predicted": labels[c]})}
                         for r, c, x0, y0, x1, y1 in cells])


@router.get("/versions/{version_id}/confusion.png")
def confusion_image(request: Request, version_id: int, store: SharedStore,
                    pictures: Confusions):
    data, _ = _confusion_png(pictures, _confusion(_version(store, version_id)))
    return png_response(request, None, data)


@router.get("/versions/{version_id}/curves.png")
def curves_image(request: Request, version_id: int, store: SharedStore):
    from model.plots import curves_png
    data = curves_png(_version(store, version_id)["metrics"].get("history") or {})
    return png_response(request, None, data)


@router.get("/versions/{version_id}/cell", response_class=HTMLResponse)
def confusion_cell(request: Request, version_id: int, truth: str, predicted: str,
                   store: SharedStore):
    from model.scoring import confusion_cell as cell_ids
    version = _version(store, version_id)
    ids = cell_ids(store, version, truth, predicted)
    rows = labeling.images_by_id(store, ids[:settings.max_page_size], version_id)
    return render(request, "cell.html", version=version, truth=truth, predicted=predicted,
                  rows=rows, total=len(ids), limit=settings.max_page_size)


@router.post("/versions/{version_id}/live")
def make_live(request: Request, version_id: int, store: SharedStore, jobs: SharedJobs,
              form: CheckedForm):
    _version(store, version_id)
    store.set_live(version_id)
    jobs.refresh()
    return redirect(request, "/versions", f"Version {version_id} is live now.")
