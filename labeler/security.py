"""The labeler's request guards: the host name (against DNS rebinding), the
password (HTTP Basic, a few wrong tries a minute per address), the
request-size checks (the length a request declares, and its body as it is
read), the CSRF cookie and token, the same-site check and the security
headers.

Every mutating request is a POST carrying a CSRF token (an HMAC of a
per-browser cookie under a per-process secret) and, when the browser sends
one, an Origin or Referer of this very site. Pages get a Content-Security-Policy
that allows no inline script.
"""
import base64
import binascii
import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import Response
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

from db.errors import SketchError
from labeler.settings import settings
from model.errors import BadImage
from service.access import HostNotAllowed, Tries, TooManyTries, check_host
from service.ingest import TooLarge

PASSWORD_ENV = "SKETCHLAB_LABELER_PASSWORD"
# This computer only, unless told otherwise (anywhere else needs a password).
DEFAULT_HOST = "127.0.0.1"
CSRF_COOKIE = "labeler_csrf"
CSRF_FIELD = "csrf"
CSRF_COOKIE_BYTES = 32
# Any other cookie value was not minted here and is replaced.
CSRF_COOKIE_LENGTH = len(secrets.token_urlsafe(CSRF_COOKIE_BYTES))
# Starlette raises one MultiPartException for every unreadable form (wrapped in
# a 400 HTTPException inside an app); only its message tells a form over our
# file or field limits (413) from a malformed one (400).
FORM_LIMIT_PREFIX = "Too many "
SECURITY_HEADERS = {
    "Content-Security-Policy":
        "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: mediastream:;"
        " script-src 'self'; style-src 'self'; object-src 'none'; base-uri 'none';"
        " form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


class Forbidden(SketchError):
    """A POST without a valid CSRF token, or from another site."""
    status = 403


def csrf_token(secret, cookie):
    return hmac.new(secret, cookie.encode(), hashlib.sha256).hexdigest()


def signed_in(request, password):
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return False
    try:
        decoded = base64.b64decode(header[6:], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    _, _, given = decoded.partition(":")
    return hmac.compare_digest(given.encode(), password.encode())


def _too_large():
    return TooLarge(f"A request can carry at most {settings.max_upload_bytes // 2**20} MB; "
                    "upload in parts.")


def check_size(request):
    """TooLarge when the request says it carries more than max_upload_bytes."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > settings.max_upload_bytes:
        raise _too_large()


def limit_body(app):
    """ASGI middleware: a request body is read up to max_upload_bytes and no
    further, whether or not it says how long it is (chunked uploads have no
    Content-Length). The read that crosses the limit raises TooLarge in the
    route reading the body, which the app answers (413); the server then
    closes the connection instead of reading the rest."""
    async def limited_app(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > settings.max_upload_bytes:
                raise _too_large()
            return message
        return await app(scope, limited_receive, send)
    return limited_app


def check_same_site(request):
    """Forbidden when the Origin (or, without one, the Referer) is another site."""
    expected = f"{request.url.scheme}://{request.headers.get('host', '')}"
    origin = request.headers.get("origin")
    if origin and origin != expected:
        raise Forbidden(f"Cross-site request refused (from {origin}).")
    referer = request.headers.get("referer")
    if not origin and referer:
        parts = urlsplit(referer)
        if f"{parts.scheme}://{parts.netloc}" != expected:
            raise Forbidden("Cross-site request refused.")


def guard(password, refuse, hosts=None):
    """The HTTP middleware: the Host check (`hosts`, see
    service.access.allowed_hosts), sign-in (when `password` is set), the size
    check, the CSRF cookie and the security headers. It runs outside the
    app's exception handlers, so `refuse(request, error)` renders a refused
    request."""
    tries = Tries(lambda: settings.password_tries)

    async def middleware(request, call_next):
        try:
            check_host(request.headers.get("host"), hosts)
        except HostNotAllowed as error:
            return refuse(request, error)
        if password is not None:
            address = request.client.host if request.client else ""
            try:
                tries.check(address)
            except TooManyTries as error:
                return refuse(request, error)
            if not signed_in(request, password):
                if request.headers.get("authorization"):
                    tries.failed(address)
                return Response("Sign in with the labeler password.", status_code=401,
                                headers={"WWW-Authenticate": 'Basic realm="labeler"'},
                                media_type="text/plain")
        try:
            check_size(request)
        except TooLarge as error:
            return refuse(request, error)
        cookie = request.cookies.get(CSRF_COOKIE)
        fresh = None
        if not cookie or len(cookie) != CSRF_COOKIE_LENGTH:
            cookie = fresh = secrets.token_urlsafe(CSRF_COOKIE_BYTES)
        request.state.csrf_cookie = cookie
        response = await call_next(request)
        if fresh:
            response.set_cookie(CSRF_COOKIE, fresh, httponly=True, samesite="strict", path="/")
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response
    return middleware


async def checked_form(request: Request) -> FormData:
    """The POSTed form, after the same-site and CSRF checks: the dependency of
    every POST route (async, as reading the body is; the routes are not)."""
    check_same_site(request)
    try:
        form = await request.form(max_files=settings.max_upload_files,
                                  max_fields=settings.max_batch + 100)
    except StarletteHTTPException as error:
        problem = error.__context__
        if not isinstance(problem, MultiPartException):
            raise
        if problem.message.startswith(FORM_LIMIT_PREFIX):
            raise TooLarge(f"{problem.message} (at most {settings.max_upload_files} files and "
                           f"{settings.max_batch} images per request).") from None
        raise BadImage(f"The form could not be read: {problem.message}") from None
    token = form.get(CSRF_FIELD)
    cookie = request.cookies.get(CSRF_COOKIE)
    if (not cookie or not isinstance(token, str)
            or not hmac.compare_digest(token, csrf_token(request.app.state.csrf_secret,
                                                         cookie))):
        raise Forbidden("The form's security token is missing or stale: reload the page "
                        "and try again.")
    return form
