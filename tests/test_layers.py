"""The layers import downwards only: db <- model <- service <- demo.py and
labeler/. Each check imports in a fresh interpreter, so what the test run
itself has imported cannot hide an upward import."""
import json

from tests.helpers.common import run_cli

DB_MODULES = ["db", "db.store", "db.labeling", "db.backup", "db.schema", "db.errors",
              "db.cli", "db.connection"]
PURE_MODEL_MODULES = ["model.errors", "model.config", "model.images"]


def imported_after(modules):
    """The names in sys.modules once `modules` are imported."""
    script = ("import importlib, json, sys\n"
              f"for name in {modules!r}:\n"
              "    importlib.import_module(name)\n"
              "print(json.dumps(sorted(sys.modules)))")
    return json.loads(run_cli("-c", script).stdout)


def upper(names, layers):
    return sorted(n for n in names if n.split(".")[0] in layers)


def test_db_imports_nothing_from_the_layers_above():
    assert upper(imported_after(DB_MODULES),
                 {"model", "service", "labeler", "demo", "demo_handlers", "demo_guard"}) == []


def test_pure_model_modules_import_nothing_from_the_layers_above():
    names = imported_after(PURE_MODEL_MODULES)
    assert upper(names, {"service", "labeler", "demo", "demo_handlers", "demo_guard"}) == []


SERVICE_MODULES = ["service.ingest", "service.jobs", "service.lifecycle", "service.access",
                   "service.corrections", "service.settings", "service.starter", "service.teach"]


def test_service_knows_no_user_interface():
    names = imported_after(SERVICE_MODULES)
    assert upper(names, {"labeler", "demo", "demo_handlers", "demo_guard", "gradio", "fastapi",
                         "starlette"}) == []
