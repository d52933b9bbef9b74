"""Capture: the webcam and upload page, uploads (images and zips) and folder
imports, all stored through service.ingest."""
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse

from db import labeling
from db.errors import SketchError
from db.store import SPLITS
from labeler.settings import settings
from labeler.web import (LABELED_BY, CheckedForm, SharedJobs, SharedStore, label_choice,
                         redirect, render, safe_next, wants_json)
from service.ingest import import_tree, store_uploads

router = APIRouter()


@router.get("/capture", response_class=HTMLResponse)
def capture(request: Request, store: SharedStore):
    return render(request, "capture.html", classes=labeling.class_names(store), splits=SPLITS,
                  max_files=settings.max_upload_files, max_frames=settings.max_burst_frames,
                  max_mb=settings.max_upload_bytes // 2**20)


@router.post("/upload")
def upload(request: Request, store: SharedStore, jobs: SharedJobs, form: CheckedForm):
    files = [f for f in form.getlist("files") if hasattr(f, "read")]
    source = form.get("source") or "upload"
    split = form.get("split") or "train"
    label = label_choice(form) or None
    blobs = []
    for file in files:
        data = file.file.read()
        if file.filename or data:
            blobs.append((file.filename or "file", data))
    summary = store_uploads(store, blobs, label, split, source, LABELED_BY)
    _score_new(store, jobs, summary["stored"])
    if wants_json(request):
        return JSONResponse(summary)
    text = (f"Stored {summary['stored']} new image(s)"
            + (f" as {label}" if label else "")
            + (f"; {summary['duplicates']} were already stored" if summary["duplicates"]
               else "")
            + (f"; skipped {len(summary['errors'])}: " + "; ".join(
                f"{name}: {message}" for name, message in summary["errors"][:10])
               if summary["errors"] else "") + ".")
    return redirect(request, safe_next(form.get("next"), "/capture"), text,
                    kind="warn" if summary["errors"] else "ok")


def _score_new(store, jobs, stored):
    """New images get the live model's prediction in the background (a
    running job is not disturbed: its own scoring or the next one covers them)."""
    if stored and store.live_version_id() is not None:
        jobs.refresh()


@router.post("/import")
def import_folder(request: Request, store: SharedStore, jobs: SharedJobs, form: CheckedForm):
    folder = (form.get("folder") or "").strip()
    if not folder:
        raise SketchError("Type the path of a folder on this computer.")
    summary = import_tree(store, folder)
    _score_new(store, jobs, summary["imported"])
    errors = summary["errors"]
    return redirect(request, "/capture", f"Imported {summary['imported']} image(s) from "
                    f"{folder}; {summary['duplicates']} were already stored"
                    + (f"; skipped {len(errors)}: " + "; ".join(
                        f"{p}: {m}" for p, m in errors[:10]) if errors else "") + ".",
                    kind="warn" if errors else "ok")
