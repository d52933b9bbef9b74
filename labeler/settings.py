"""The labeler's named limits, in one table as datasette keeps its settings:
each names its default and says what it bounds. The routes read them at
request time (so a test can change one with monkeypatch); the caches read
theirs when the app is created."""
from service.settings import Setting, Settings

settings = Settings(
    Setting("page_size", 60, "Thumbnails on a grid page unless it asks for another number."),
    Setting("max_page_size", 200, "Most thumbnails a grid page or a confusion cell shows."),
    Setting("max_batch", 5000, "Most images (or corrections) one batch request may change, "
            "select-all pages included."),
    Setting("max_upload_bytes", 200 * 1024 * 1024, "Most bytes one request may carry (many "
            "files or zips); a body is read no further (413), whether or not it says its "
            "length."),
    Setting("max_upload_files", 1000, "Most files one upload request may carry."),
    Setting("thumb_side", 128, "Longest side of a thumbnail, in pixels."),
    Setting("thumb_cache_size", 5000, "Thumbnails the process keeps in memory."),
    Setting("queue_page_size", 50, "Corrections on a page of the review queue."),
    Setting("max_burst_frames", 300, "Frames after which a webcam burst stops even while the "
            "button is held."),
    Setting("key_classes", 9, "Number keys 1..key_classes label the focused image with one of "
            "the first classes."),
    Setting("flash_keep", 200, "Flash messages kept for the redirect that follows a POST."),
    Setting("export_cache", 4, "Model exports kept in memory (a TFLite conversion takes "
            "seconds)."),
    Setting("password_tries", 10, "Wrong passwords one address may try a minute; after that "
            "it is told to wait (429) without its password being checked."),
    Setting("watch_live_every", 2.0, "Seconds between checks whether another process (the "
            "demo, python -m model.train) made a version live; its predictions are then "
            "computed in the background, so the model filters and sorts stay right."),
    Setting("demo_url", "http://127.0.0.1:7860/", "Where the demo runs (python demo.py): "
            "every page links to it."),
    Setting("confusion_cache", 32, "Confusion-matrix pictures kept in memory: the version page "
            "needs the cell positions and the browser then asks for the same picture."),
)
