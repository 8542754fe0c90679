"""``datadreamer.utils.fs_utils``: DataDreamer's file helpers; this project has none of them."""

from .._missing import missing

clear_dir = missing("utils.fs_utils.clear_dir")
dir_size = missing("utils.fs_utils.dir_size")
safe_fn = missing("utils.fs_utils.safe_fn")

__all__ = ["clear_dir", "dir_size", "safe_fn"]
