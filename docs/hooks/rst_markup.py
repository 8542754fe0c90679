"""Griffe extension: the docstrings' reST inline markup as Markdown for mkdocstrings.

The code's docstrings are written for readers of the source and for ``help()``: reST roles
(``:class:`~dreamer_dagster.llms.OpenAI``` -> ``OpenAI``), double-backquoted literals, and a
paragraph ending ``::`` before an indented example. The site renders docstrings as
Markdown, so this rewrites them when griffe loads each object (the code is not changed).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

__all__ = ["RstMarkup", "to_markdown"]

_ROLE = re.compile(
    r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|const|ref):`(~?)([^`<]+?)(?:\s*<[^>]+>)?`"
)
_LITERAL = re.compile(r"``(.+?)``", re.S)


def _role(match: re.Match) -> str:
    tilde, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


def to_markdown(text: str) -> str:
    """reST roles and ````literals```` as Markdown code; a closing ``::`` as ``:``."""
    text = _ROLE.sub(_role, text)
    text = _LITERAL.sub(lambda m: f"`{m.group(1)}`", text)
    lines = []
    for line in text.split("\n"):
        stripped = line.rstrip()
        if stripped.endswith("::"):
            stripped = stripped[:-2].rstrip()
            line = stripped + ":" if stripped else ""
        lines.append(line)
    return "\n".join(lines)


class RstMarkup(griffe.Extension):
    """Rewrites each loaded object's docstring with :func:`to_markdown`."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
