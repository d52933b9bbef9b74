"""Classes: create, rename, merge and delete."""
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from db import labeling
from db.errors import ClassConflict
from labeler.web import CheckedForm, SharedJobs, SharedStore, int_value, redirect, render

router = APIRouter()


@router.get("/classes", response_class=HTMLResponse)
def classes_page(request: Request, store: SharedStore):
    return render(request, "classes.html", classes=labeling.class_summary(store),
                  totals=labeling.counts(store))


@router.post("/classes")
def class_create(request: Request, store: SharedStore, form: CheckedForm):
    _, name, created = labeling.create_class(store, form.get("name") or "")
    return redirect(request, "/classes", f"Created the class {name}." if created
                    else f"The class {name} already exists.")


def _no_job_running(jobs, doing):
    # A retrain or rescoring writes predictions with the names it read at its start.
    if jobs.running():
        raise ClassConflict(f"A model job is running: try {doing} again once it has "
                            "finished (see Retrain).")


@router.post("/classes/{class_id}/rename")
def class_rename(request: Request, class_id: int, store: SharedStore, jobs: SharedJobs,
                 form: CheckedForm):
    _no_job_running(jobs, "renaming")
    old, new = labeling.rename_class(store, class_id, form.get("name") or "")
    return redirect(request, "/classes", f"Renamed {old} to {new}.")


@router.post("/classes/{class_id}/merge")
def class_merge(request: Request, class_id: int, store: SharedStore, jobs: SharedJobs,
                form: CheckedForm):
    target = int_value(form.get("into"), None, "into")
    _no_job_running(jobs, "merging")
    source, into, moved = labeling.merge_classes(store, class_id, target)
    return redirect(request, "/classes", f"Merged {source} into {into} ({moved} image(s) moved).")


@router.post("/classes/{class_id}/delete")
def class_delete(request: Request, class_id: int, store: SharedStore, form: CheckedForm):
    name = labeling.delete_class(store, class_id)
    return redirect(request, "/classes", f"Deleted the class {name}.")
