"""The grid, batch edits, the image page and the image files."""
import io
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from PIL import Image

from db import labeling
from db.errors import SketchError
from db.store import SOURCES, SPLITS
from labeler.settings import settings
from model.config import DEFAULTS
from model.errors import BlankSketch
from model.images import PREPROCESSING_VERSION, decode, picture, preprocess, require_ink
from labeler.web import (LABELED_BY, CheckedForm, SharedStore, Thumbs, ids_of, int_value,
                         label_choice, png_response, redirect, render, safe_next, wants_json)

router = APIRouter()


@router.get("/", include_in_schema=False)
def home():
    return RedirectResponse("/images", status_code=303)


@router.get("/images", response_class=HTMLResponse)
def images(request: Request, store: SharedStore):
    q = request.query_params
    filters = _filters(q)
    sort = q.get("sort") or "newest"
    page = int_value(q.get("page"), 1, "page")
    per_page = int_value(q.get("per_page"), settings.page_size, "per_page")
    per_page = max(1, min(per_page, settings.max_page_size))
    page = max(1, page)
    live_id = store.live_version_id()
    rows, total = labeling.grid(store, filters, sort, (page - 1) * per_page, per_page, live_id)
    pages = max(1, -(-total // per_page))
    state = {k: v for k, v in {
        **filters, "sort": sort if sort != "newest" else "",
        "per_page": per_page if per_page != settings.page_size else ""}.items() if v}
    classes = labeling.class_names(store)
    return render(
        request, "images.html", rows=rows, total=total, page=page, pages=pages,
        per_page=per_page, filters=filters, sort=sort, classes=classes,
        key_classes=classes[:settings.key_classes],
        predicted=labeling.version_classes(store, live_id),
        sources=SOURCES, splits=SPLITS, statuses=labeling.GRID_STATUSES,
        unlabeled=labeling.UNLABELED,
        sorts=labeling.GRID_SORTS, select_all=q.get("select") == "page",
        page_url=lambda p, **extra: "/images?" + urlencode({**state, "page": p, **extra}),
        here="/images?" + urlencode({**state, "page": page}), live_id=live_id)


@router.post("/images/batch")
def batch(request: Request, store: SharedStore, form: CheckedForm):
    ids = ids_of(form)
    text, undo = _batch(store, form, ids, form.get("action") or "")
    if wants_json(request):
        return JSONResponse({"ok": True, "message": text})
    return redirect(request, safe_next(form.get("next")), text, undo)


def _batch(store, form, ids, action):
    if not ids:
        raise SketchError("Select at least one image first.")
    if action == "label":
        label = label_choice(form)
        if not label:
            raise SketchError("Pick a class or type a new class name.")
        count = labeling.label_images(store, ids, label, LABELED_BY)
        return f"Labeled {count} image(s) as {label}.", None
    if action == "unlabel":
        return f"Removed the label of {store.remove_labels(ids)} image(s).", None
    if action == "split":
        split = form.get("split") or ""
        return f"Moved {labeling.move_to_split(store, ids, split)} image(s) to {split}.", None
    if action == "delete":
        deleted = labeling.delete_images(store, ids)
        return f"Deleted {len(deleted)} image(s).", deleted
    if action == "restore":
        return f"Restored {len(labeling.restore_images(store, ids))} image(s).", None
    raise SketchError(f"Unknown action {action!r}.")


@router.get("/images/{image_id}.png")
def image_file(request: Request, image_id: int, store: SharedStore):
    sha, data = labeling.image_png(store, image_id)
    return png_response(request, sha, data)


@router.get("/images/{image_id}/thumb.png")
def thumbnail(request: Request, image_id: int, store: SharedStore, thumbs: Thumbs):
    sha, data = thumbs.get_or_make(image_id, lambda: _thumbnail(store, image_id))
    return png_response(request, sha + "-t", data)


def _thumbnail(store, image_id):
    """(sha, PNG bytes) of an image at most thumb_side pixels on its longest side."""
    sha, data = labeling.image_png(store, image_id)
    image = Image.open(io.BytesIO(data))
    image.thumbnail((settings.thumb_side, settings.thumb_side), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return sha, out.getvalue()


@router.get("/images/{image_id}/seen.png")
def seen_image(request: Request, image_id: int, store: SharedStore):
    """What the live model's network sees of the image: preprocessing's output."""
    sha, data = labeling.image_png(store, image_id)
    size = _input_size(store)
    tag = f"{sha}-seen-{size}-{PREPROCESSING_VERSION}"
    if request.headers.get("if-none-match") == f'"{tag}"':
        return png_response(request, tag, b"")  # 304: the browser has it; preprocess nothing
    out = io.BytesIO()
    picture(preprocess(decode(data), size, keep_grey=True)).save(out, format="PNG")
    return png_response(request, tag, out.getvalue())


def _input_size(store):
    live = store.model_version()
    return (live["config"] if live else DEFAULTS)["input_size"]


@router.get("/images/{image_id}", response_class=HTMLResponse)
def image_page(request: Request, image_id: int, store: SharedStore):
    row = labeling.image_row(store, image_id)
    grid_row = labeling.images_by_id(store, [image_id], store.live_version_id())[0]
    try:
        require_ink(decode(labeling.image_png(store, image_id)[1]))
        blank = False
    except BlankSketch:
        blank = True
    return render(request, "image.html", image=row, prediction=grid_row, blank=blank,
                  classes=labeling.class_names(store), splits=SPLITS)


def _filters(q):
    filters = {}
    label = q.get("label") or ""
    if label and label != labeling.UNLABELED:
        int_value(label, None, "label")
    filters["label"] = label
    filters["predicted"] = q.get("predicted") or ""
    for key, allowed in (("source", SOURCES), ("split", SPLITS),
                         ("status", labeling.GRID_STATUSES)):
        value = q.get(key) or ""
        if value and value not in allowed:
            raise SketchError(f"Unknown {key} {value!r}; expected one of {', '.join(allowed)}.")
        filters[key] = value if value != "all" else ""
    return filters
