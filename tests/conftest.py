"""Shared fixtures, and the hooks that mark and skip tests. Every test gets a
real SQLite file in a temporary folder; TensorFlow tests use the genuine
MobileNet v1 alpha 0.25 ImageNet weights, copied into a temporary KERAS_HOME
before Keras is imported."""
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.helpers.browser import require_chromium
from tests.helpers.common import ARTIFACTS, ROOT, TEST_ALPHA, WEIGHTS


def _weights_sources():
    yield ROOT.parent / "shared" / "weights" / WEIGHTS
    if os.environ.get("KERAS_HOME"):
        yield Path(os.environ["KERAS_HOME"]) / "models" / WEIGHTS
    yield Path.home() / ".keras" / "models" / WEIGHTS


def pytest_configure(config):
    # Keras reads KERAS_HOME when it is imported: set it before any test module imports it.
    home = Path(tempfile.mkdtemp(prefix="sketchlab-keras-"))
    (home / "models").mkdir()
    for source in _weights_sources():
        if source.is_file():
            shutil.copy(source, home / "models" / WEIGHTS)
            break
    os.environ["KERAS_HOME"] = str(home)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ["GRADIO_TEMP_DIR"] = tempfile.mkdtemp(prefix="sketchlab-gradio-")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    ARTIFACTS.mkdir(exist_ok=True)


# A test using any of these, directly or through another fixture, loads the
# real backbone, trains a model or serves one: it is marked slow.
SLOW_FIXTURES = {"backbone", "server", "served", "trained", "trained_db"}


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    # Before any fixture: a module's `server` is not started for nothing.
    if item.get_closest_marker("browser"):
        require_chromium()


@pytest.fixture(scope="session")
def backbone():
    """The real alpha 0.25 backbone; skips (with the reason) only when its
    weights are nowhere: not in ../shared, not in a Keras cache, not downloadable."""
    from model.backbone import load_backbone
    from model.errors import WeightsMissing
    try:
        return load_backbone(TEST_ALPHA, 224)
    except WeightsMissing as error:
        pytest.skip(f"MobileNet weights unavailable: {error}")


@pytest.fixture
def store(tmp_path):
    from db import Store
    store = Store(tmp_path / "sketches.db")
    yield store
    store.close()


@pytest.fixture(scope="module")
def server(backbone, tmp_path_factory):
    """The module-level demo launched in this process on its own copy of the
    starter database, shared by the tests of a module: (url, app)."""
    from tests.helpers.demo import served_copy
    with served_copy(tmp_path_factory.mktemp("served")) as served:
        yield served


@pytest.fixture(scope="module")
def playwright():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        yield p


@pytest.fixture
def demo_app():
    """The module-global `demo_handlers.app`, for a test to configure as it
    needs: it is put back to its defaults after the test, whatever happened.
    (Not reset before: a module's `server` may be using it.)"""
    import demo_handlers
    yield demo_handlers.app
    demo_handlers.app.configure()
