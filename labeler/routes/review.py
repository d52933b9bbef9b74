"""The review queue of corrections sent from the demo."""
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from db import labeling
from db.errors import SketchError
from labeler.settings import settings
from labeler.web import (LABELED_BY, CheckedForm, SharedStore, int_value, redirect, render,
                         safe_next)
from service.ingest import TooLarge

router = APIRouter()


@router.get("/review", response_class=HTMLResponse)
def review(request: Request, store: SharedStore):
    q = request.query_params
    status = q.get("status") or "pending"
    if status not in ("pending", "accepted", "rejected"):
        raise SketchError("Status must be pending, accepted or rejected.")
    page = max(1, int_value(q.get("page"), 1, "page"))
    size = settings.queue_page_size
    rows, total = labeling.correction_queue(store, status, (page - 1) * size, size)
    return render(request, "review.html", rows=rows, total=total, status=status, page=page,
                  pages=max(1, -(-total // size)), select_all=q.get("select") == "page")


@router.get("/review/sender", response_class=HTMLResponse)
def review_sender(request: Request, store: SharedStore):
    """Rejecting everything one sender sent is asked for here, away from the
    queue's Accept buttons, and confirmed."""
    sender = request.query_params.get("sender") or ""
    return render(request, "reject_sender.html", sender=sender,
                  pending=labeling.pending_count(store, sender))


@router.post("/review")
def review_post(request: Request, store: SharedStore, form: CheckedForm):
    if form.get("reject_sender"):
        sender = form.get("reject_sender")
        count = store.reject_sender(sender)
        return redirect(request, safe_next(form.get("next"), "/review"),
                        f"Rejected {count} pending correction(s) from {sender}.")
    values, action = form.getlist("ids"), form.get("action") or ""
    for one in ("accept", "reject"):
        if form.get(f"{one}_one"):
            values, action = [form.get(f"{one}_one")], one
    try:
        ids = [int(v) for v in values]
    except ValueError:
        raise SketchError("Correction ids must be numbers.") from None
    if not ids:
        raise SketchError("Select at least one correction first.")
    if len(ids) > settings.max_batch:
        raise TooLarge(f"At most {settings.max_batch} corrections can be reviewed at once.")
    status = {"accept": "accepted", "reject": "rejected"}.get(action)
    if status is None:
        raise SketchError("A review either accepts or rejects.")
    store.review_corrections(ids, status, LABELED_BY)
    return redirect(request, safe_next(form.get("next"), "/review"),
                    f"{status.capitalize()} {len(ids)} correction(s).")
