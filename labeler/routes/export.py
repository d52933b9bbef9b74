"""Exports: the labeled dataset as a folder-per-class zip, and the live
model as .keras, .tflite and labels.txt."""
import csv
import io
import tempfile
import zipfile

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from db import labeling
from labeler.web import Exports, SharedStore, render
from model.errors import NoLiveModel

router = APIRouter()


def folder_name(name):
    """A class name as a folder name in the exported zip: characters that
    file systems reject are percent-encoded (labels.csv keeps the exact names,
    but for a leading quote on those a spreadsheet would run as formulas)."""
    out = "".join(f"%{ord(ch):02X}" if ch in '<>:"/\\|?*%' or ord(ch) < 32 else ch
                  for ch in name)
    return "%2E" + out[1:] if out.startswith(".") else out


def spreadsheet_safe(text):
    """A cell a spreadsheet shows as text: a class named =HYPERLINK(...) would
    otherwise run as a formula when labels.csv is opened (OWASP's CSV
    injection advice: a leading quote)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@router.get("/export", response_class=HTMLResponse)
def export_page(request: Request):
    return render(request, "export.html")


@router.get("/export/dataset.zip")
def export_dataset(store: SharedStore):
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
                writer.writerow([path, spreadsheet_safe(name), split])
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


def _live_version(store):
    version = store.model_version()
    if version is None:
        raise NoLiveModel("No model has been trained yet: press Retrain first.")
    return version


def _model_file(store, exports, kind):
    """The live model as a `kind` file, attached under its version's name."""
    version = _live_version(store)
    from model import export
    make = {"keras": export.keras_bytes, "tflite": export.tflite_bytes}[kind]
    data = exports.get_or_make((version["id"], kind), lambda: make(version))
    return Response(data, media_type="application/octet-stream", headers={
        "Content-Disposition": f'attachment; filename="sketchlab-v{version["id"]}.{kind}"'})


@router.get("/export/model.keras")
def export_keras(store: SharedStore, exports: Exports):
    return _model_file(store, exports, "keras")


@router.get("/export/model.tflite")
def export_tflite(store: SharedStore, exports: Exports):
    return _model_file(store, exports, "tflite")


@router.get("/export/labels.txt")
def export_labels(store: SharedStore):
    from model.export import labels_text
    version = _live_version(store)
    return Response(labels_text(version), media_type="text/plain; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="sketchlab-v{version["id"]}-labels.txt"'})
