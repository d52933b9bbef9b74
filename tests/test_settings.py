"""Each app's named limits: one table, every setting explained and read."""
import ast
from pathlib import Path

import pytest

from tests.helpers.common import ROOT


def _demo():
    from demo_handlers import settings
    return settings, [ROOT / "demo.py", ROOT / "demo_handlers.py", ROOT / "demo_guard.py"]


def _labeler():
    from labeler.settings import settings
    return settings, list((ROOT / "labeler").rglob("*.py"))


def attributes_read(paths, name="settings"):
    """The attribute names read off `name` in these source files."""
    read = set()
    for path in paths:
        for node in ast.walk(ast.parse(Path(path).read_text(), str(path))):
            if (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load)
                    and isinstance(node.value, ast.Name) and node.value.id == name):
                read.add(node.attr)
    return read


@pytest.mark.parametrize("app", [_demo, _labeler], ids=["demo", "labeler"])
def test_every_setting_says_what_it_bounds_and_the_app_reads_each_one(app):
    settings, sources = app()
    names = [setting.name for setting in settings.table]
    assert len(names) == len(set(names))
    assert all(setting.help.strip() for setting in settings.table)
    assert all(getattr(settings, setting.name) == setting.default for setting in settings.table)
    assert attributes_read(sources) - {"table", "describe"} == set(names)


def test_a_setting_defined_twice_is_refused():
    from service.settings import Setting, Settings
    with pytest.raises(ValueError, match="twice"):
        Settings(Setting("limit", 1, "one"), Setting("limit", 2, "two"))
