"""DataDreamer 0.46's own test suite run against this project (see docs/parity.md)."""
