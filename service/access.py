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
from dataclasses import dataclass

from db.errors import SketchError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
AUTH_ENV = "SKETCHLAB_AUTH"


class NotAllowed(SketchError):
    """An action reserved to the signed-in owner."""
    status = 403


def is_loopback(host):
    return host in LOOPBACK


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
