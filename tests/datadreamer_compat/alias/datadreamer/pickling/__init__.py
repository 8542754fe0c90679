"""``datadreamer.pickling``."""

from dreamer_dagster.pickling import unpickle_value as unpickle

from .._missing import missing

unpickle_transform = missing("pickling.unpickle_transform")

__all__ = ["unpickle", "unpickle_transform"]
