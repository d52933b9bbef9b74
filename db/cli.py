"""What every command-line tool of the project shares: the --db option and
the way a SketchError ends a command."""
import contextlib
import sys

from db.errors import SketchError
from db.store import DEFAULT_PATH

DB_HELP = f"SQLite file (default: $SKETCHLAB_DB or {DEFAULT_PATH})"
# argparse's status for a usage error: a refused command exits the same way.
ERROR_STATUS = 2


def add_db_option(parser):
    """--db PATH; None when not given, for Store to take $SKETCHLAB_DB or DEFAULT_PATH."""
    parser.add_argument("--db", default=None, help=DB_HELP)


@contextlib.contextmanager
def exit_on_error():
    """Run a command's body; a SketchError prints `error: <message>` on stderr
    and exits with ERROR_STATUS (as argparse does): the person at the terminal
    needs the message, not a traceback."""
    try:
        yield
    except SketchError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(ERROR_STATUS) from None
