"""Who may do what in the demo.

  * anyone who can open the page classifies and sends corrections; corrections
    from anonymous users stay pending until reviewed in the labeler;
  * with an owner (--auth user:password) every request is signed in and that
    user is the owner: the owner's corrections are accepted at once, and only
    the owner may add examples and retrain;
  * without an owner, adding examples and retraining work only while the app
    is not exposed (bound to a loopback address, no share link), so
    retraining is never reachable through a public link without a password.
"""
import collections
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from db.errors import SketchError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
# Bound to one of these, a server answers on every address of the machine.
WILDCARDS = ("0.0.0.0", "::", "")
AUTH_ENV = "SKETCHLAB_AUTH"


class NotAllowed(SketchError):
    """An action reserved to the signed-in owner."""
    status = 403


class HostNotAllowed(SketchError):
    """A request for a host name this server does not answer to: what a DNS
    rebinding attack sends, a page of another site reaching a local server
    under its own name."""
    status = 400


class TooManyTries(SketchError):
    """Too many wrong passwords in a minute."""
    status = 429


class TooManyRequests(SketchError):
    """Too many of one kind of request in a minute."""
    status = 429


class Window:
    """Events per key (a client address, a user name, a browser) in the last
    minute, for at most MAX_TRACKED keys (the oldest forgotten first): bounded
    memory."""
    MAX_TRACKED = 10_000
    WINDOW_S = 60.0

    def __init__(self):
        self._events = collections.OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key, now):
        stamps = [t for t in self._events.get(key, ()) if now - t < self.WINDOW_S]
        if stamps:
            self._events[key] = stamps
            self._events.move_to_end(key)
        else:
            self._events.pop(key, None)
        return stamps

    def count(self, key):
        with self._lock:
            return len(self._recent(key, time.monotonic()))

    def add(self, key, limit=None):
        """Count one event of `key`; with a `limit`, only if fewer than that
        were counted in the minute (True when counted)."""
        with self._lock:
            now = time.monotonic()
            recent = self._recent(key, now)
            if limit is not None and len(recent) >= limit:
                return False
            self._events[key] = recent + [now]
            self._events.move_to_end(key)
            while len(self._events) > self.MAX_TRACKED:
                self._events.popitem(last=False)
            return True


class Tries(Window):
    """Wrong passwords per key in the last minute; `limit()` says how many a
    minute a key may try."""

    def __init__(self, limit):
        super().__init__()
        self.limit = limit

    def check(self, key):
        """TooManyTries when `key` has used up its wrong tries of the minute."""
        if self.count(key) >= self.limit():
            raise TooManyTries(f"Too many wrong passwords: wait a minute "
                               f"(at most {self.limit()} tries a minute).")

    def failed(self, key):
        self.add(key)


class Rate(Window):
    """At most `limit()` requests of one kind (`what`) a minute per key."""

    def __init__(self, limit, what):
        super().__init__()
        self.limit, self.what = limit, what

    def take(self, key):
        """Count one request of `key`, or TooManyRequests past the limit."""
        if not self.add(key, self.limit()):
            raise TooManyRequests(f"Too many {self.what}: at most {self.limit()} a minute. "
                                  "Wait a minute.")


class BrowserIds:
    """Signed ids in a cookie that tell anonymous browsers apart, so that
    rate limits and "reject everything from this sender" apply to one
    browser even when many share an address (behind a proxy or the share
    tunnel). The key lives as long as the process: after a restart a browser
    gets a new id."""
    COOKIE = "sketchlab_browser"
    MAX_AGE_S = 365 * 24 * 3600

    def __init__(self, key=None):
        self._key = key or secrets.token_bytes(32)

    def _signature(self, raw):
        return hmac.new(self._key, raw.encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self):
        raw = secrets.token_urlsafe(12)
        return f"{raw}.{self._signature(raw)}"

    def verify(self, value):
        """The id in a cookie value this process signed, else None."""
        raw, _, signature = (value or "")[:200].partition(".")
        if raw and hmac.compare_digest(signature, self._signature(raw)):
            return raw
        return None

    def cookie(self, value):
        """A Set-Cookie header value for `value`."""
        return (f"{self.COOKIE}={value}; Max-Age={self.MAX_AGE_S}; Path=/; HttpOnly; "
                "SameSite=Lax")


def is_loopback(host):
    return host in LOOPBACK


def allowed_hosts(bound, extra=(), password=False):
    """The host names a server bound to `bound` answers to: the loopback names,
    the bound address and `extra` (the names it is reached by, given by its
    owner). None (any name) only for a server bound to every address with a
    password and no names given: a rebinding page cannot sign in."""
    extra = {name.strip().lower().strip("[]") for name in extra if name.strip()}
    if bound in WILDCARDS:
        if password and not extra:
            return None
        return frozenset(LOOPBACK) | extra
    return frozenset(LOOPBACK) | {bound.lower()} | extra


def check_host(header, allowed):
    """HostNotAllowed unless the Host header names an allowed host (any port)."""
    if allowed is None:
        return
    try:
        name = urlsplit("//" + (header or "")).hostname
    except ValueError:
        name = None
    if name not in allowed:
        raise HostNotAllowed(f"This server does not answer to the host name "
                             f"{(header or '(none)')[:100]!r}. If that is how you reach it, "
                             f"start it with --allowed-host NAME.")


@dataclass
class Access:
    owner: str | None = None
    exposed: bool = False

    def is_owner(self, user):
        return self.owner is not None and user == self.owner

    def may_teach(self, user):
        if self.owner is not None:
            return self.is_owner(user)
        return not self.exposed

    def check_teach(self, user):
        """NotAllowed, saying why, unless `user` may add examples and retrain."""
        if self.may_teach(user):
            return
        if self.owner is not None:
            raise NotAllowed(f"Only the owner ({self.owner}) may add examples and retrain.")
        raise NotAllowed("Adding examples and retraining are disabled because this app is "
                         "shared without a password. Restart it with --auth user:password "
                         f"(or {AUTH_ENV}=user:password) and sign in as the owner.")
