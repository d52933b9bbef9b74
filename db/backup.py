"""python -m db.backup DEST: a consistent copy of the database while it is in use.

Uses SQLite's online backup API, so writers carry on during the copy; the copy
is checked with PRAGMA integrity_check before it replaces DEST."""
import argparse
import contextlib
import os
import sqlite3
import sys

from db.cli import add_db_option, exit_on_error
from db.connection import BUSY_TIMEOUT_MS
from db.store import default_path
from db.errors import SketchError


def backup(source, dest):
    """Copy `source` to `dest` atomically; returns the integrity check result ("ok")."""
    if not os.path.exists(source):
        raise SketchError(f"There is no database at {source}.")
    if os.path.exists(f"{dest}-wal"):
        # SQLite would apply that journal to the new copy: the copy would open
        # as some other database.
        raise SketchError(f"{dest}-wal exists: {dest} is in use, or a process using it was "
                          "killed. Back up to another path, or open and close that database "
                          "once to fold the journal in.")
    temporary = f"{dest}.{os.getpid()}.partial"
    try:
        # closing(), not `with connect()` (which only commits): the copy must be
        # closed before it is renamed. Left open, it keeps the copy in WAL mode
        # on `temporary-wal` and `-shm`, and every later connection of this
        # process to DEST shares that stale wal-index (SQLite keys it by inode):
        # it misses other processes' commits and, closing last, checkpoints
        # without them and deletes DEST-wal, losing them.
        with contextlib.closing(sqlite3.connect(source, timeout=BUSY_TIMEOUT_MS / 1000)) as src, \
                contextlib.closing(sqlite3.connect(temporary)) as out:
            src.backup(out, pages=1024)
            check = out.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            raise SketchError(f"The copy failed its integrity check: {check}")
        os.replace(temporary, dest)
        return check
    except sqlite3.Error as error:
        raise SketchError(f"Backup failed: {error}") from error
    finally:
        for leftover in (temporary, f"{temporary}-wal", f"{temporary}-shm"):
            if os.path.exists(leftover):
                os.remove(leftover)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m db.backup", description=__doc__)
    parser.add_argument("dest", metavar="DEST", help="file to write the copy to")
    add_db_option(parser)
    args = parser.parse_args(argv)
    with exit_on_error():
        backup(args.db or default_path(), args.dest)
    print(f"backed up to {args.dest}: integrity ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
