"""``datadreamer.utils.background_utils``: DataDreamer's background processes (none here)."""

from .._missing import missing

check_if_fault_handler_is_setup = missing("utils.background_utils.check_if_fault_handler_is_setup")

__all__ = ["check_if_fault_handler_is_setup"]
