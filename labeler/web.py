"""What the labeler's routes share: the app's state as FastAPI dependencies,
page rendering with the flash message, redirects, the one error page, and the
parsers of query and form values."""
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import jinja2
from markupsafe import Markup
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from db import Store, labeling
from db.errors import SketchError
from db.store import MAX_LABEL_LENGTH, clean_label
from labeler.settings import settings
from labeler.cache import LRU
from labeler.security import checked_form, csrf_token
from service.ingest import TooLarge
from service.jobs import Jobs

HERE = Path(__file__).resolve().parent
LABELED_BY = "labeler"
FLASH_COOKIE = "labeler_flash"
TITLES = {403: "Forbidden", 404: "Not found", 409: "Not possible now", 413: "Too large",
          429: "Too many requests", 503: "Unavailable"}


def _shared(name):
    # Async: reading an attribute needs no worker thread.
    async def shared(request: Request):
        return getattr(request.app.state, name)
    return Depends(shared)


SharedStore = Annotated[Store, _shared("store")]
SharedJobs = Annotated[Jobs, _shared("jobs")]
Thumbs = Annotated[LRU, _shared("thumbs")]
Exports = Annotated[LRU, _shared("exports")]
Confusions = Annotated[LRU, _shared("confusion")]
CheckedForm = Annotated[FormData, Depends(checked_form)]


def templates():
    # Lenient about missing keys: versions recorded by older code have fewer metrics.
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                             autoescape=True, undefined=jinja2.ChainableUndefined)
    env.filters["pct"] = lambda v: "–" if not isinstance(v, (int, float)) else f"{100 * v:.1f}%"
    env.filters["prob"] = lambda v: "–" if not isinstance(v, (int, float)) else f"{v:.2f}"
    env.filters["when"] = when
    env.globals.update(max_label=MAX_LABEL_LENGTH, max_per_page=settings.max_page_size,
                       demo_url=lambda: settings.demo_url)
    return env


def when(stamp):
    """A stored UTC time as a readable <time> ("30 Nov 2026, 00:48 UTC");
    labeler.js shows it in the browser's own time zone."""
    try:
        moment = datetime.fromisoformat(str(stamp)).astimezone(timezone.utc)
    except ValueError:
        return stamp or "–"
    return Markup('<time datetime="{}">{}</time>').format(
        moment.isoformat(), moment.strftime("%d %b %Y, %H:%M UTC"))


class Flash:
    """Messages (with optional undo ids) carried across a POST's redirect."""

    def __init__(self):
        self._items = LRU(settings.flash_keep)

    def put(self, text, undo=None, kind="ok"):
        key = secrets.token_urlsafe(12)
        self._items.put(key, {"text": text, "undo": undo or [], "kind": kind})
        return key

    def pop(self, key):
        return self._items.pop(key) if key else None


# -- responses ---------------------------------------------------------------------------

def render(request, template, **context):
    state = request.app.state
    key = request.cookies.get(FLASH_COOKIE)
    live = state.store.live_version_id()
    html = state.templates.get_template(template).render(
        csrf=csrf_token(state.csrf_secret, request.state.csrf_cookie),
        counts={"pending": labeling.pending_count(state.store)},
        flash=state.flash.pop(key), live={"id": live} if live is not None else None,
        nav=template.split(".")[0],
        request_path=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        **context)
    response = HTMLResponse(html)
    if key:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def redirect(request, to, text=None, undo=None, kind="ok"):
    response = RedirectResponse(to, status_code=303)
    if text:
        response.set_cookie(FLASH_COOKIE, request.app.state.flash.put(text, undo, kind),
                            httponly=True, samesite="strict", path="/")
    return response


def png_response(request, etag, data):
    headers = {"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"}
    if etag:
        tag = f'"{etag}"'
        headers["ETag"] = tag
        if request.headers.get("if-none-match") == tag:
            return Response(status_code=304, headers=headers)
    else:
        headers["Cache-Control"] = "no-store"
    return Response(data, media_type="image/png", headers=headers)


def wants_json(request):
    return request.headers.get("x-requested-with") == "fetch"


# -- errors: translated once, here ---------------------------------------------------------

def error_page(request, status, title, message):
    if wants_json(request):
        return JSONResponse({"error": message}, status_code=status)
    html = request.app.state.templates.get_template("error.html").render(
        title=title, message=message, status=status, nav=None, counts=None, flash=None,
        csrf="", live=None, request_path=request.url.path)
    return HTMLResponse(html, status_code=status)


def error_response(request, error):
    """The page (or JSON) of a SketchError, with the status it carries."""
    return error_page(request, error.status, TITLES.get(error.status, "Bad request"), str(error))


async def sketch_error(request, error):
    return error_response(request, error)


async def invalid_request(request, error):
    return error_page(request, 400, "Bad request", "The request is not valid: " + "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()))


async def out_of_range(request, error):
    """SQLite stores integers of 64 bits: a larger id or page number in a
    request fails as it is bound to a query."""
    return error_page(request, 400, "Bad request",
                      "A number in the request is out of range (ids and page numbers are "
                      f"below {2 ** 63:,}).")


async def http_error(request, error):
    return error_page(request, error.status_code, "Error", str(error.detail))


# -- values of queries and forms ---------------------------------------------------------------

def safe_next(value, default="/images"):
    """A local path to return to, never another site."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    return value


def int_value(value, default, name):
    if value in (None, ""):
        if default is None:
            raise SketchError(f"{name} is missing.")
        return default
    try:
        return int(value)
    except ValueError:
        raise SketchError(f"{name} must be a whole number, not {value!r}.") from None


def ids_of(form):
    """The image ids a form lists, at most max_batch of them."""
    values = form.getlist("ids")
    if len(values) > settings.max_batch:
        raise TooLarge(f"At most {settings.max_batch} images can be changed at once.")
    try:
        return [int(v) for v in values]
    except ValueError:
        raise SketchError("Image ids must be numbers.") from None


def label_choice(form):
    """The class a form names, cleaned (a new name wins over the list), or ""."""
    name = (form.get("new_label") or "").strip() or (form.get("label") or "").strip()
    return clean_label(name) if name else ""
