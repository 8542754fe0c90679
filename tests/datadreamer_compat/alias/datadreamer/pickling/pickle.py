"""``datadreamer.pickling.pickle``."""

from dreamer_dagster.pickling import pickle_value as _pickle
from dreamer_dagster.pickling import unpickle_value as unpickle

__all__ = ["_pickle", "unpickle"]
