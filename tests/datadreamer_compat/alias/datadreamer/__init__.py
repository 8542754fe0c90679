"""The alias layer: DataDreamer's import names mapped to dreamer_dagster's objects.

Put first on ``sys.path`` only by the compatibility run (tests/test_datadreamer_compat.py),
never installed. It maps names and holds no behaviour: ``DataDreamer`` is ``Pipeline``
(script mode comes from ``DREAMER_RUN=1``, set by the run).
"""

from dreamer_dagster import Pipeline as DataDreamer
from dreamer_dagster import __version__

__all__ = ["DataDreamer", "__version__"]
