"""``python -m dreamer_dagster``: the ``dreamer`` command."""

from .cli import main

raise SystemExit(main())
