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
        """The entry under `key`, made by `make()` when missing. The lock is not
        held while making (a thumbnail or a TFLite conversion must not stall
        every other request), so two threads may both make one; either is kept."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()
        self.put(key, value)
        return value

    def __len__(self):
        with self._lock:
            return len(self._items)
