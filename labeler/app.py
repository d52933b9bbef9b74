"""The batch-labeling web tool: server-rendered HTML (FastAPI + Jinja2) whose
every flow works as plain HTML forms; labeler/static/labeler.js only makes
them faster (keyboard, shift-click, drag and drop, webcam bursts, live
retrain progress).

`create_app(store_path, password=None, train_options=None, ...)` builds the app;
`python -m labeler` serves it. All SQL lives in db/labeling.py, all
TensorFlow work in model/, ingestion and jobs in service/; the routes in
labeler/routes/ only wire requests to them, guarded by labeler/security.py.

The routes that touch SQLite or TensorFlow are plain functions, which FastAPI
runs in its thread pool; only reading a POST's form (security.checked_form)
happens on the event loop. Templates escape everything. Images are served
only from the database, always as image/png, with nosniff and a
Content-Security-Policy that allows no inline script.
"""
import contextlib
import secrets

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from db import Store
from db.errors import SketchError
from labeler import security, web
from labeler.settings import settings
from labeler.cache import LRU
from labeler.routes import capture, classes, export, images, review, versions
from service import access
from service.jobs import Jobs, LiveWatcher


def create_app(store_path, password=None, train_options=None, host=security.DEFAULT_HOST,
               allowed_hosts=()):
    """The labeler as a FastAPI app on the SQLite file `store_path`.

    With `password`, every request must sign in (HTTP Basic, any user name).
    `train_options` are the model.train options of the Retrain button.
    Requests must name `host` (the address it is bound to), a loopback name
    or one of `allowed_hosts` (service.access.allowed_hosts).
    """
    store = Store(store_path)
    jobs = Jobs(store, train_options)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        # While serving, the predictions follow the live version, whoever made it.
        watcher = LiveWatcher(jobs, settings.watch_live_every).start()
        yield
        watcher.stop()

    app = FastAPI(title="Sketchlab labeler", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    # What the routes share, reached through the dependencies in labeler.web.
    app.state.store = store
    app.state.jobs = jobs
    app.state.templates = web.templates()
    app.state.csrf_secret = secrets.token_bytes(32)
    app.state.flash = web.Flash()
    app.state.thumbs = LRU(settings.thumb_cache_size)
    app.state.exports = LRU(settings.export_cache)
    app.state.confusion = LRU(settings.confusion_cache)

    hosts = access.allowed_hosts(host, allowed_hosts, password=password is not None)
    # Added first, so inside the guard: the TooLarge it raises comes from the route
    # reading the body, and the app answers it.
    app.add_middleware(security.limit_body)
    app.middleware("http")(security.guard(password, refuse=web.error_response, hosts=hosts))
    app.add_exception_handler(SketchError, web.sketch_error)
    app.add_exception_handler(RequestValidationError, web.invalid_request)
    app.add_exception_handler(StarletteHTTPException, web.http_error)
    app.add_exception_handler(OverflowError, web.out_of_range)

    app.mount("/static", StaticFiles(directory=web.HERE / "static"), name="static")
    for routes in (images, review, classes, capture, versions, export):
        app.include_router(routes.router)
    return app
