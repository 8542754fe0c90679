"""How long a test waits before it calls something hung.

A test never fails because the machine is slow: a subprocess, a server start or a wait
for a child to reach some point is bounded only to stop a hang, by ``HANG_S``, far past
anything a busy 2-core machine needs. A bound an issue states is asserted as behaviour
(what was sent, what was cached, what happened first), not as elapsed time."""

from __future__ import annotations

__all__ = ["HANG_S"]

HANG_S = 1800.0
"""Seconds after which a subprocess or a wait is hung, not slow (30 minutes)."""
