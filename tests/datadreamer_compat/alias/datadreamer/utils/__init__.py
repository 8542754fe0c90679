"""``datadreamer.utils``: only the modules DataDreamer's tests import."""
