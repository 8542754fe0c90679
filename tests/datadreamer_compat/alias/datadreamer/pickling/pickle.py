"""``datadreamer.pickling.pickle``."""

from dreamer_dagster.pickling import direct_pickle as _pickle
from dreamer_dagster.pickling import unpickle_value as unpickle

__all__ = ["_pickle", "unpickle"]
