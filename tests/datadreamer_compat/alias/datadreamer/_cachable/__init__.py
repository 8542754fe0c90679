"""``datadreamer._cachable``: DataDreamer's private model cache (none of its names here)."""
