"""A small thread-safe LRU map. Everything the labeler keeps in memory
(thumbnails, model exports, flash messages, confusion pictures) is bounded
by one of these; it knows nothing about HTTP."""
import collections
import threading


class LRU:
    """At most `size` entries; the least recently used one goes first."""

    def __init__(self, size):
        self.size = size
        self._items = collections.OrderedDict()
        self._lock = threading.Lock()
        self._making = {}  # key -> the lock of the one thread making it

    def put(self, key, value):
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def pop(self, key, default=None):
        with self._lock:
            return self._items.pop(key, default)

    def get_or_make(self, key, make):
        """The entry under `key`, made by `make()` when missing. The map's lock
        is not held while making (a thumbnail or a TFLite conversion must not
        stall every other request); threads asking for the same missing key
        wait for the one making it, so 20 requests for one export convert once."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            making = self._making.setdefault(key, threading.Lock())
        with making:
            with self._lock:
                if key in self._items:  # made while this thread waited
                    self._items.move_to_end(key)
                    return self._items[key]
            try:
                value = make()
                self.put(key, value)
            finally:
                with self._lock:
                    self._making.pop(key, None)
        return value

    def __len__(self):
        with self._lock:
            return len(self._items)
