"""A DataDreamer name this project does not have: importing it works (so the other tests of
the file still run), using it fails, naming what is missing. No behaviour is faked."""

from __future__ import annotations

from typing import Any

__all__ = ["missing"]


def missing(name: str) -> type:
    """A class standing for DataDreamer's ``name``: any call or instantiation raises."""

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise NotImplementedError(f"datadreamer.{name} has no counterpart in dreamer_dagster")

    return type(name.rsplit(".", 1)[-1], (), {"__new__": refuse, "__init_subclass__": classmethod(refuse)})
