"""The batch-labeling web tool: server-rendered HTML (FastAPI + Jinja2) whose
every flow works as plain HTML forms; labeler/static/labeler.js only makes
them faster (keyboard, shift-click, drag and drop, webcam bursts, live
retrain progress).

`create_app(store_path, password=None, train_options=None)` builds the app;
`python -m labeler` serves it. All SQL lives in db/labeling.py, all
TensorFlow work in model/; this module only wires requests to them.

Safety: labeler/security.py guards every request (password, CSRF, same
site, security headers). Templates escape everything. Images are served only
from the database, always as image/png, with nosniff and a
Content-Security-Policy that allows no inline script.
"""
import csv
import io
import json
import secrets
import tempfile
import zipfile
from pathlib import Path
from urllib.parse import urlencode

import jinja2
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (HTMLResponse, JSONResponse, RedirectResponse, Response,
                               StreamingResponse)
from fastapi.staticfiles import StaticFiles
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from db import Store, labeling
from db.store import MAX_LABEL_LENGTH, SOURCES, SPLITS, clean_label
from service.ingest import TooLarge, import_tree, store_uploads
from service.jobs import Jobs
from db.errors import ClassConflict, NotFound, SketchError
from labeler import security, settings
from labeler.cache import LRU
from model.errors import NoLiveModel

HERE = Path(__file__).resolve().parent
LABELED_BY = "labeler"
TITLES = {403: "Forbidden", 404: "Not found", 409: "Not possible now", 413: "Too large",
          429: "Too many requests", 503: "Unavailable"}


def thumbnail_png(store, image_id):
    """(sha, PNG bytes) of an image at most THUMB_SIDE pixels on its longest side."""
    sha, data = labeling.image_png(store, image_id)
    image = Image.open(io.BytesIO(data))
    image.thumbnail((settings.THUMB_SIDE, settings.THUMB_SIDE), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return sha, out.getvalue()


class Flash:
    """Messages (with optional undo ids) carried across a POST's redirect."""

    def __init__(self):
        self._items = LRU(settings.FLASH_KEEP)

    def put(self, text, undo=None, kind="ok"):
        key = secrets.token_urlsafe(12)
        self._items.put(key, {"text": text, "undo": undo or [], "kind": kind})
        return key

    def pop(self, key):
        return self._items.pop(key) if key else None


def safe_next(value, default="/images"):
    """A local path to return to, never another site."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    return value


def folder_name(name):
    """A class name as a folder name in the exported zip: characters that
    file systems reject are percent-encoded (labels.csv keeps the exact names)."""
    out = "".join(f"%{ord(ch):02X}" if ch in '<>:"/\\|?*%' or ord(ch) < 32 else ch
                  for ch in name)
    return "%2E" + out[1:] if out.startswith(".") else out


def create_app(store_path, password=None, train_options=None):
    """The labeler as a FastAPI app on the SQLite file `store_path`.

    With `password`, every request must sign in (HTTP Basic, any user name).
    `train_options` are the model.train options of the Retrain button.
    """
    store = Store(store_path)
    jobs = Jobs(store, train_options)
    thumbs = LRU(settings.THUMB_CACHE_SIZE)
    flash = Flash()
    secret = secrets.token_bytes(32)
    exports = LRU(settings.EXPORT_CACHE)
    confusion_pngs = LRU(settings.CONFUSION_CACHE)

    # Lenient about missing keys: versions recorded by older code have fewer metrics.
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                             autoescape=True, undefined=jinja2.ChainableUndefined)
    env.filters["pct"] = lambda v: "–" if not isinstance(v, (int, float)) else f"{100 * v:.1f}%"
    env.filters["prob"] = lambda v: "–" if not isinstance(v, (int, float)) else f"{v:.2f}"
    env.globals.update(max_label=MAX_LABEL_LENGTH, max_per_page=settings.MAX_PAGE_SIZE)

    app = FastAPI(title="Sketchlab labeler", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store
    app.state.jobs = jobs
    app.state.thumbs = thumbs
    app.state.confusion = confusion_pngs
    app.state.csrf_secret = secret
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    # -- errors: translated once, here ------------------------------------------------

    def _error_page(request, status, title, message):
        if _wants_json(request):
            return JSONResponse({"error": message}, status_code=status)
        html = env.get_template("error.html").render(
            title=title, message=message, status=status, nav=None, counts=None, flash=None,
            csrf="", live=None, request_path=request.url.path)
        return HTMLResponse(html, status_code=status)

    def _error_response(request, error):
        return _error_page(request, error.status, TITLES.get(error.status, "Bad request"),
                           str(error))

    @app.exception_handler(SketchError)
    async def sketch_error(request, error):
        return _error_response(request, error)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, error):
        return _error_page(request, 400, "Bad request", "The request is not valid: " + "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, error):
        return _error_page(request, error.status_code, "Error", str(error.detail))

    app.middleware("http")(security.guard(password, refuse=_error_response))

    # -- helpers -------------------------------------------------------------------------

    def render(request, template, **context):
        key = request.cookies.get("labeler_flash")
        message = flash.pop(key)
        live = _live_summary(store)
        html = env.get_template(template).render(
            csrf=security.csrf_token(secret, request.state.csrf_cookie),
            counts={"pending": labeling.pending_count(store)},
            flash=message, live=live, nav=template.split(".")[0],
            request_path=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            **context)
        response = HTMLResponse(html)
        if key:
            response.delete_cookie("labeler_flash", path="/")
        return response

    def redirect(to, text=None, undo=None, kind="ok"):
        response = RedirectResponse(to, status_code=303)
        if text:
            response.set_cookie("labeler_flash", flash.put(text, undo, kind), httponly=True,
                                samesite="strict", path="/")
        return response

    def ids_of(form):
        values = form.getlist("ids")
        if len(values) > settings.MAX_BATCH:
            raise TooLarge(f"At most {settings.MAX_BATCH} images can be changed at once.")
        try:
            return [int(v) for v in values]
        except ValueError:
            raise SketchError("Image ids must be numbers.") from None

    def label_choice(form):
        """The class a form names, cleaned (a new name wins over the list), or ""."""
        name = (form.get("new_label") or "").strip() or (form.get("label") or "").strip()
        return clean_label(name) if name else ""

    # -- pages ---------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def home():
        return RedirectResponse("/images", status_code=303)

    @app.get("/images", response_class=HTMLResponse)
    def images(request: Request):
        q = request.query_params
        filters = _filters(q)
        sort = q.get("sort") or "newest"
        page = _int(q.get("page"), 1, "page")
        per_page = _int(q.get("per_page"), settings.PAGE_SIZE, "per_page")
        per_page = max(1, min(per_page, settings.MAX_PAGE_SIZE))
        page = max(1, page)
        live_id = store.live_version_id()
        rows, total = labeling.grid(store, filters, sort, (page - 1) * per_page, per_page,
                                    live_id)
        pages = max(1, -(-total // per_page))
        state = {k: v for k, v in {
            **filters, "sort": sort if sort != "newest" else "",
            "per_page": per_page if per_page != settings.PAGE_SIZE else ""}.items() if v}
        classes = labeling.class_names(store)
        return render(
            request, "images.html", rows=rows, total=total, page=page, pages=pages,
            per_page=per_page, filters=filters, sort=sort, classes=classes,
            key_classes=classes[:settings.KEY_CLASSES],
            predicted=labeling.version_classes(store, live_id),
            sources=SOURCES, splits=SPLITS, statuses=labeling.GRID_STATUSES,
            unlabeled=labeling.UNLABELED,
            sorts=labeling.GRID_SORTS, select_all=q.get("select") == "page",
            page_url=lambda p, **extra: "/images?" + urlencode({**state, "page": p, **extra}),
            here="/images?" + urlencode({**state, "page": page}), live_id=live_id)

    @app.post("/images/batch")
    async def batch(request: Request):
        form = await security.checked_form(request)
        ids = ids_of(form)
        action = form.get("action") or ""
        back = safe_next(form.get("next"))
        result = await run_in_threadpool(_batch, form, ids, action)
        text, undo = result
        if _wants_json(request):
            return JSONResponse({"ok": True, "message": text})
        return redirect(back, text, undo)

    def _batch(form, ids, action):
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
            return (f"Moved {labeling.move_to_split(store, ids, split)} image(s) to {split}.",
                    None)
        if action == "delete":
            deleted = labeling.delete_images(store, ids)
            return f"Deleted {len(deleted)} image(s).", deleted
        if action == "restore":
            return f"Restored {len(labeling.restore_images(store, ids))} image(s).", None
        raise SketchError(f"Unknown action {action!r}.")

    @app.get("/images/{image_id}.png")
    def image_file(request: Request, image_id: int):
        sha, data = labeling.image_png(store, image_id)
        return _png_response(request, sha, data)

    @app.get("/images/{image_id}/thumb.png")
    def thumbnail(request: Request, image_id: int):
        sha, data = thumbs.get_or_make(image_id, lambda: thumbnail_png(store, image_id))
        return _png_response(request, sha + "-t", data)

    @app.get("/images/{image_id}", response_class=HTMLResponse)
    def image_page(request: Request, image_id: int):
        row = labeling.image_row(store, image_id)
        live_id = store.live_version_id()
        grid_row = labeling.images_by_id(store, [image_id], live_id)[0]
        return render(request, "image.html", image=row, prediction=grid_row,
                      classes=labeling.class_names(store), splits=SPLITS)

    # -- review queue --------------------------------------------------------------------

    @app.get("/review", response_class=HTMLResponse)
    def review(request: Request):
        q = request.query_params
        status = q.get("status") or "pending"
        if status not in ("pending", "accepted", "rejected"):
            raise SketchError("Status must be pending, accepted or rejected.")
        page = max(1, _int(q.get("page"), 1, "page"))
        size = settings.QUEUE_PAGE_SIZE
        rows, total = labeling.correction_queue(store, status, (page - 1) * size, size)
        return render(request, "review.html", rows=rows, total=total, status=status, page=page,
                      pages=max(1, -(-total // size)),
                      select_all=q.get("select") == "page")

    @app.post("/review")
    async def review_post(request: Request):
        form = await security.checked_form(request)
        if form.get("reject_sender"):
            sender = form.get("reject_sender")
            count = await run_in_threadpool(store.reject_sender, sender)
            return redirect(safe_next(form.get("next"), "/review"),
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
        if len(ids) > settings.MAX_BATCH:
            raise TooLarge(f"At most {settings.MAX_BATCH} corrections can be reviewed at once.")
        status = {"accept": "accepted", "reject": "rejected"}.get(action)
        if status is None:
            raise SketchError("A review either accepts or rejects.")
        await run_in_threadpool(store.review_corrections, ids, status, LABELED_BY)
        return redirect(safe_next(form.get("next"), "/review"),
                        f"{status.capitalize()} {len(ids)} correction(s).")

    # -- classes ----------------------------------------------------------------------------

    @app.get("/classes", response_class=HTMLResponse)
    def classes_page(request: Request):
        return render(request, "classes.html", classes=labeling.class_summary(store),
                      totals=labeling.counts(store))

    @app.post("/classes")
    async def class_create(request: Request):
        form = await security.checked_form(request)
        _, name, created = labeling.create_class(store, form.get("name") or "")
        return redirect("/classes", f"Created the class {name}." if created
                        else f"The class {name} already exists.")

    def _no_job_running(doing):
        # A retrain or rescoring writes predictions with the names it read at its start.
        if jobs.running():
            raise ClassConflict(f"A model job is running: try {doing} again once it has "
                                "finished (see Retrain).")

    @app.post("/classes/{class_id}/rename")
    async def class_rename(request: Request, class_id: int):
        form = await security.checked_form(request)
        _no_job_running("renaming")
        old, new = labeling.rename_class(store, class_id, form.get("name") or "")
        return redirect("/classes", f"Renamed {old} to {new}.")

    @app.post("/classes/{class_id}/merge")
    async def class_merge(request: Request, class_id: int):
        form = await security.checked_form(request)
        target = _int(form.get("into"), None, "into")
        _no_job_running("merging")
        source, into, moved = labeling.merge_classes(store, class_id, target)
        return redirect("/classes", f"Merged {source} into {into} ({moved} image(s) moved).")

    @app.post("/classes/{class_id}/delete")
    async def class_delete(request: Request, class_id: int):
        await security.checked_form(request)
        name = labeling.delete_class(store, class_id)
        return redirect("/classes", f"Deleted the class {name}.")

    # -- capture: webcam, upload, folder import ----------------------------------------------

    @app.get("/capture", response_class=HTMLResponse)
    def capture(request: Request):
        return render(request, "capture.html", classes=labeling.class_names(store),
                      splits=SPLITS, max_files=settings.MAX_UPLOAD_FILES,
                      max_frames=settings.MAX_BURST_FRAMES,
                      max_mb=settings.MAX_UPLOAD_BYTES // 2**20)

    @app.post("/upload")
    async def upload(request: Request):
        form = await security.checked_form(request)
        files = [f for f in form.getlist("files") if hasattr(f, "read")]
        source = form.get("source") or "upload"
        split = form.get("split") or "train"
        label = label_choice(form) or None
        blobs = []
        for upload in files:
            data = await upload.read()
            if upload.filename or data:
                blobs.append((upload.filename or "file", data))
        summary = await run_in_threadpool(store_uploads, store, blobs, label, split, source,
                                          LABELED_BY)
        _score_new(summary["stored"])
        if _wants_json(request):
            return JSONResponse(summary)
        text = (f"Stored {summary['stored']} new image(s)"
                + (f" as {label}" if label else "")
                + (f"; {summary['duplicates']} were already stored" if summary["duplicates"]
                   else "")
                + (f"; skipped {len(summary['errors'])}: " + "; ".join(
                    f"{name}: {message}" for name, message in summary["errors"][:10])
                   if summary["errors"] else "") + ".")
        return redirect(safe_next(form.get("next"), "/capture"), text,
                        kind="warn" if summary["errors"] else "ok")

    def _score_new(stored):
        """New images get the live model's prediction in the background (a
        running job is not disturbed: its own scoring or the next one covers them)."""
        if stored and store.live_version_id() is not None:
            jobs.refresh()

    @app.post("/import")
    async def import_folder(request: Request):
        form = await security.checked_form(request)
        folder = (form.get("folder") or "").strip()
        if not folder:
            raise SketchError("Type the path of a folder on this computer.")
        summary = await run_in_threadpool(import_tree, store, folder)
        _score_new(summary["imported"])
        errors = summary["errors"]
        return redirect("/capture", f"Imported {summary['imported']} image(s) from {folder}; "
                        f"{summary['duplicates']} were already stored"
                        + (f"; skipped {len(errors)}: " + "; ".join(
                            f"{p}: {m}" for p, m in errors[:10]) if errors else "") + ".",
                        kind="warn" if errors else "ok")

    # -- retrain, versions, predictions ------------------------------------------------------

    @app.get("/retrain", response_class=HTMLResponse)
    def retrain_page(request: Request):
        return render(request, "retrain.html", job=jobs.snapshot(),
                      options=jobs.train_options)

    @app.get("/retrain/status")
    def retrain_status():
        return JSONResponse(jobs.snapshot())

    @app.post("/retrain")
    async def retrain_post(request: Request):
        form = await security.checked_form(request)
        if not jobs.retrain(force=bool(form.get("force"))):
            return redirect("/retrain", "A job is already running; wait for it to finish.",
                            kind="warn")
        return redirect("/retrain")

    @app.post("/predictions/refresh")
    async def predictions_refresh(request: Request):
        await security.checked_form(request)
        if store.live_version_id() is None:
            raise NoLiveModel("No model has been trained yet: press Retrain first.")
        if not jobs.refresh():
            return redirect("/retrain", "A job is already running; wait for it to finish.",
                            kind="warn")
        return redirect("/retrain")

    @app.get("/versions", response_class=HTMLResponse)
    def versions(request: Request):
        return render(request, "versions.html", versions=store.model_versions())

    def _version(version_id):
        version = store.model_version(version_id)
        if version is None:
            raise NotFound(f"There is no model version {version_id}.")
        return version

    def _confusion(version):
        return version["metrics"].get("confusion") or {"labels": [], "matrix": []}

    def _confusion_png(confusion):
        """(PNG bytes, cell rectangles) of a confusion matrix, kept under its JSON
        (a renamed class gives a new key)."""
        from model.plots import confusion_png
        return confusion_pngs.get_or_make(
            json.dumps(confusion),
            lambda: confusion_png(confusion["labels"], confusion["matrix"]))

    @app.get("/versions/{version_id}", response_class=HTMLResponse)
    def version_page(request: Request, version_id: int):
        version = _version(version_id)
        confusion = _confusion(version)
        _, cells = _confusion_png(confusion)
        labels = confusion["labels"]
        return render(request, "version.html", version=version, metrics=version["metrics"],
                      cells=[{"truth": labels[r], "predicted": labels[c],
                              "count": confusion["matrix"][r][c],
                              "coords": f"{x0},{y0},{x1},{y1}",
                              "href": f"/versions/{version_id}/cell?" + urlencode(
                                  {"truth": labels[r], "predicted": labels[c]})}
                             for r, c, x0, y0, x1, y1 in cells])

    @app.get("/versions/{version_id}/confusion.png")
    def confusion_image(request: Request, version_id: int):
        data, _ = _confusion_png(_confusion(_version(version_id)))
        return _png_response(request, None, data)

    @app.get("/versions/{version_id}/curves.png")
    def curves_image(request: Request, version_id: int):
        from model.plots import curves_png
        data = curves_png(_version(version_id)["metrics"].get("history") or {})
        return _png_response(request, None, data)

    @app.get("/versions/{version_id}/cell", response_class=HTMLResponse)
    def confusion_cell(request: Request, version_id: int, truth: str, predicted: str):
        from model.scoring import confusion_cell as cell_ids
        version = _version(version_id)
        ids = cell_ids(store, version, truth, predicted)
        rows = labeling.images_by_id(store, ids[:settings.MAX_PAGE_SIZE], version_id)
        return render(request, "cell.html", version=version, truth=truth, predicted=predicted,
                      rows=rows, total=len(ids), limit=settings.MAX_PAGE_SIZE)

    @app.post("/versions/{version_id}/live")
    async def make_live(request: Request, version_id: int):
        await security.checked_form(request)
        _version(version_id)
        store.set_live(version_id)
        jobs.refresh()
        return redirect("/versions", f"Version {version_id} is live now.")

    # -- export --------------------------------------------------------------------------------

    @app.get("/export", response_class=HTMLResponse)
    def export_page(request: Request):
        return render(request, "export.html")

    @app.get("/export/dataset.zip")
    def export_dataset():
        spool = tempfile.SpooledTemporaryFile(max_size=32 * 2**20)
        rows = labeling.labeled_for_export(store)
        with zipfile.ZipFile(spool, "w", zipfile.ZIP_STORED) as archive:
            listing = io.StringIO()
            writer = csv.writer(listing)
            writer.writerow(["path", "class", "split"])
            for start in range(0, len(rows), 500):
                chunk = rows[start:start + 500]
                data = dict(store.image_data([r[0] for r in chunk]))
                for image_id, split, name in chunk:
                    path = f"{split}/{folder_name(name)}/{image_id}.png"
                    archive.writestr(path, data[image_id])
                    writer.writerow([path, name, split])
            archive.writestr("labels.csv", listing.getvalue())
        size = spool.tell()
        spool.seek(0)

        def chunks():
            with spool:
                while block := spool.read(1 << 20):
                    yield block
        return StreamingResponse(chunks(), media_type="application/zip", headers={
            "Content-Disposition": 'attachment; filename="sketchlab-dataset.zip"',
            "Content-Length": str(size)})

    def _export(kind):
        version = store.model_version()
        if version is None:
            raise NoLiveModel("No model has been trained yet: press Retrain first.")
        from model import export
        make = {"keras": export.keras_bytes, "tflite": export.tflite_bytes}[kind]
        return version, exports.get_or_make((version["id"], kind), lambda: make(version))

    @app.get("/export/model.keras")
    def export_keras():
        version, data = _export("keras")
        return Response(data, media_type="application/octet-stream", headers={
            "Content-Disposition": f'attachment; filename="sketchlab-v{version["id"]}.keras"'})

    @app.get("/export/model.tflite")
    def export_tflite():
        version, data = _export("tflite")
        return Response(data, media_type="application/octet-stream", headers={
            "Content-Disposition": f'attachment; filename="sketchlab-v{version["id"]}.tflite"'})

    @app.get("/export/labels.txt")
    def export_labels():
        from model.export import labels_text
        version = store.model_version()
        if version is None:
            raise NoLiveModel("No model has been trained yet: press Retrain first.")
        return Response(labels_text(version), media_type="text/plain; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="sketchlab-v{version["id"]}-labels.txt"'})

    return app


# -- helpers shared by the routes ---------------------------------------------------------------

def _wants_json(request):
    return request.headers.get("x-requested-with") == "fetch"


def _int(value, default, name):
    if value in (None, ""):
        if default is None:
            raise SketchError(f"{name} is missing.")
        return default
    try:
        return int(value)
    except ValueError:
        raise SketchError(f"{name} must be a whole number, not {value!r}.") from None


def _filters(q):
    filters = {}
    label = q.get("label") or ""
    if label and label != labeling.UNLABELED:
        _int(label, None, "label")
    filters["label"] = label
    filters["predicted"] = q.get("predicted") or ""
    for key, allowed in (("source", SOURCES), ("split", SPLITS),
                         ("status", labeling.GRID_STATUSES)):
        value = q.get(key) or ""
        if value and value not in allowed:
            raise SketchError(f"Unknown {key} {value!r}; expected one of {', '.join(allowed)}.")
        filters[key] = value if value != "all" else ""
    return filters


def _live_summary(store):
    live = store.live_version_id()
    return {"id": live} if live is not None else None


def _png_response(request, etag, data):
    headers = {"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"}
    if etag:
        tag = f'"{etag}"'
        headers["ETag"] = tag
        if request.headers.get("if-none-match") == tag:
            return Response(status_code=304, headers=headers)
    else:
        headers["Cache-Control"] = "no-store"
    return Response(data, media_type="image/png", headers=headers)

