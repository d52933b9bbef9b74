"""The labeler's named limits, in one table as datasette keeps its settings:
each names its default and says what it bounds. They become attributes of
this module, which the routes read at request time (so a test can change one
with monkeypatch); the caches read theirs when the app is created."""
from typing import NamedTuple


class Setting(NamedTuple):
    name: str
    default: int
    help: str


SETTINGS = (
    Setting("PAGE_SIZE", 60, "Thumbnails on a grid page unless it asks for another number."),
    Setting("MAX_PAGE_SIZE", 200, "Most thumbnails a grid page or a confusion cell shows."),
    Setting("MAX_BATCH", 5000, "Most images (or corrections) one batch request may change, "
            "select-all pages included."),
    Setting("MAX_UPLOAD_BYTES", 200 * 1024 * 1024, "Most bytes one request may carry (many "
            "files or zips)."),
    Setting("MAX_UPLOAD_FILES", 1000, "Most files one upload request may carry."),
    Setting("THUMB_SIDE", 128, "Longest side of a thumbnail, in pixels."),
    Setting("THUMB_CACHE_SIZE", 5000, "Thumbnails the process keeps in memory."),
    Setting("QUEUE_PAGE_SIZE", 50, "Corrections on a page of the review queue."),
    Setting("MAX_BURST_FRAMES", 300, "Frames after which a webcam burst stops even while the "
            "button is held."),
    Setting("KEY_CLASSES", 9, "Number keys 1..KEY_CLASSES label the focused image with one of "
            "the first classes."),
    Setting("FLASH_KEEP", 200, "Flash messages kept for the redirect that follows a POST."),
    Setting("EXPORT_CACHE", 4, "Model exports kept in memory (a TFLite conversion takes "
            "seconds)."),
    Setting("CONFUSION_CACHE", 32, "Confusion-matrix pictures kept in memory: the version page "
            "needs the cell positions and the browser then asks for the same picture."),
)

globals().update((setting.name, setting.default) for setting in SETTINGS)
