"""The SQLite store. Every SQL statement of the project lives in this package."""
from db.store import DEFAULT_PATH, Store, clean_label, default_path

__all__ = ["DEFAULT_PATH", "Store", "clean_label", "default_path"]
