"""The SQLite store. Every SQL statement of the project lives in this package.

One query style, whatever the table:
- a read that returns rows as records uses sqlite-utils' `db.query(...)`, whose
  dicts are keyed by the selected column names (aliases where needed);
- a read that returns a count, ids or fixed pairs uses `db.execute(...)` tuples;
- every write statement of a table is a `Store` method in db/store.py, run in
  `Store.transaction()`. db/labeling.py only reads: its edits check what the
  labeler allows and call those methods inside one transaction.
Long id lists go through `db.connection.in_chunks` and `placeholders`.
"""
from db.store import DEFAULT_PATH, Store, clean_label, default_path

__all__ = ["DEFAULT_PATH", "Store", "clean_label", "default_path"]
