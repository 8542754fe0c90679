"""Export methods every step has: JSON, CSV, a saved HF dataset, the HF Hub."""

from __future__ import annotations

from typing import Any

__all__ = ["ExportMethods"]


class ExportMethods:
    """Mixin: DataDreamer's ``export_to_*`` and ``publish_to_hf_hub``."""

    def _export_not_ready(self, *_: Any, **__: Any) -> Any:
        raise NotImplementedError("export")
