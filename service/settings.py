"""Named limits, as datasette keeps them: each app has one table of settings,
each with a name, a default and a help text, read as attributes."""
from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    name: str
    default: object
    help: str


class Settings:
    """The values of a table of Settings, by name (tests may set one)."""

    def __init__(self, *table):
        self.table = table
        for setting in table:
            if hasattr(self, setting.name):
                raise ValueError(f"setting {setting.name!r} is defined twice")
            setattr(self, setting.name, setting.default)

    def describe(self):
        """One line per setting: name, default and help (for --help and docs)."""
        return "\n".join(f"  {s.name} = {s.default!r}: {s.help}" for s in self.table)
