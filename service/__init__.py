"""The application layer between the two UIs (demo.py, labeler/) and model/db:
ingestion, background jobs with progress, corrections, the first model and
the demo's lifecycle. The UIs call these plain functions; nothing here knows
about Gradio or FastAPI."""
