"""Per-thread SQLite connections, short write transactions, schema migrations,
and the helpers that split long id lists into statements SQLite accepts.

Each thread gets its own connection (Gradio and the labeler serve requests
from worker threads, and a sqlite3 connection must not be shared between
them). Writes run in short `BEGIN IMMEDIATE` transactions so that concurrent
writers queue on the busy timeout instead of failing half-way.
"""
import contextlib
import sqlite3
import threading
import time
from pathlib import Path

import sqlite_utils

from db.errors import SketchError, StorageError
from db.schema import MIGRATIONS, SCHEMA_VERSION, statements

BUSY_TIMEOUT_MS = 15_000
# Ids bound per `IN (...)` list: SQLite builds before 3.32 refuse statements
# with more than 999 host parameters, and a few more are bound beside the ids.
SQL_CHUNK = 500


def in_chunks(items, size=SQL_CHUNK):
    """`items` (any iterable) as consecutive lists of at most `size`."""
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start:start + size]


def placeholders(values):
    """"?,?,..." binding each of `values` in an `IN (...)` list."""
    return ",".join("?" * len(values))


class Connection:
    def __init__(self, path):
        self.path = str(path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._migrate()

    @property
    def db(self):
        db = getattr(self._local, "db", None)
        if db is None:
            try:
                conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                                       isolation_level=None, check_same_thread=False)
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                _use_wal(conn)
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("PRAGMA foreign_keys = ON")
            except sqlite3.OperationalError as error:
                raise self._storage_error(error) from error
            db = self._local.db = sqlite_utils.Database(conn)
        return db

    @contextlib.contextmanager
    def transaction(self):
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception.

        Nested use joins the outer transaction, so helpers can be composed.
        """
        db = self.db
        if db.conn.in_transaction:
            yield db
            return
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                if db.conn.in_transaction:
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.OperationalError as error:
            if db.conn.in_transaction:
                db.execute("ROLLBACK")
            raise self._storage_error(error) from error

    def _storage_error(self, error):
        text = str(error)
        if "readonly" in text or "read-only" in text:
            return StorageError(f"The database {self.path} is read-only: nothing was saved. "
                                "Check the file's and folder's permissions.")
        if "full" in text:
            return StorageError(f"The database {self.path} cannot grow (disk full): nothing "
                                "was saved. Free some space and try again.")
        if "locked" in text or "busy" in text:
            return StorageError("The database is busy with another writer: nothing was saved. "
                                "Try again in a moment.")
        return StorageError(f"Database error on {self.path}: {text}. Nothing was saved.")

    def close(self):
        db = getattr(self._local, "db", None)
        if db is not None:
            db.conn.close()
            self._local.db = None

    def _migrate(self):
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            raise SketchError(
                f"{self.path} has schema version {version}, newer than this code "
                f"understands ({SCHEMA_VERSION}); update the code.")
        for number in range(version + 1, SCHEMA_VERSION + 1):
            with self.transaction() as db:
                # Another process may have migrated while we waited for the lock.
                if self.schema_version() >= number:
                    continue
                for sql in statements(MIGRATIONS[number - 1]):
                    db.execute(sql)
                db.execute(f"PRAGMA user_version = {number}")

    def schema_version(self):
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    def integrity_check(self):
        return self.db.execute("PRAGMA integrity_check").fetchone()[0]


def _use_wal(conn):
    """Switch the file to WAL. The switch needs the file alone for a moment, and
    SQLite answers "locked" at once, without waiting the busy timeout, when
    another process holds it (several opening an old file together): retry."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
