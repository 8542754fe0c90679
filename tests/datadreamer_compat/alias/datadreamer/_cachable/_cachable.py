"""``datadreamer._cachable._cachable``: private; its tests are not applicable."""

from .._missing import missing

_StrWithSeed = missing("_cachable._cachable._StrWithSeed")

__all__ = ["_StrWithSeed"]
