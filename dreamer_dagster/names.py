"""Step names made safe for asset keys and folder names.

A name is NFC-normalized first, so ``"café"`` typed either way is one step. An ASCII
name keeps its plain rule (lower case, runs of anything but letters and digits become
``_``); a non-ASCII letter is transliterated where Unicode decomposes it to ASCII
(``"Résumé"`` -> ``resume``), and a name with a letter that does not (``"日本語"``)
gets a short hash of the name appended, so its key is stable and ASCII. A key longer
than :data:`MAX_KEY_LENGTH` could not be a folder name, so it is refused.

A step's folder follows DataDreamer's own rule instead (:func:`folder_name`:
``safe_fn(name, allow_slashes=True, to_lower=True)``): ``"Generate Research Paper
Abstracts"`` -> ``generate-research-paper-abstracts``, and a step run inside a SuperStep
(``"Outer / Inner"``) nests as ``outer/inner``. Releases before it named folders by the
key (``legacy_folder_name``; see folder_upgrade.py).
"""

from __future__ import annotations

import hashlib
import keyword
import re
import unicodedata
from collections.abc import Iterator

__all__ = [
    "MAX_KEY_LENGTH",
    "SUPER_STEP_PREFIXES",
    "RESERVED_FOLDER_NAMES",
    "derived_names",
    "folder_name",
    "legacy_folder_name",
    "normalize_name",
    "safe_name",
    "scoped_name",
]

_UNSAFE = re.compile(r"[^a-z0-9]+")

#: The longest asset key (= step folder name): a file name has at most 255 bytes on
#: the usual filesystems (ext4, XFS, APFS, NTFS), less the ``.lock`` of the step's lock
#: file ``.locks/<step>.lock``. Work folders (``.staging/<step>-<host>--<pid>--...``)
#: shorten a long name themselves (see work_folders.py).
MAX_KEY_LENGTH = 255 - len(".lock")

#: Hex digits of the hash a name with letters that have no ASCII form gets.
_HASH_LENGTH = 8


def normalize_name(name: str) -> str:
    """``name`` in Unicode NFC (``"cafe\\u0301"`` -> ``"café"``); anything else unchanged."""
    return unicodedata.normalize("NFC", name) if isinstance(name, str) else name


def safe_name(name: str) -> str:
    """``"Generate Tweets from Abstracts"`` -> ``"generate_tweets_from_abstracts"``.

    Lower case; every run of characters other than letters and digits becomes one
    ``_``; leading and trailing ``_`` are dropped. Non-ASCII letters become their
    ASCII form where Unicode has one (``"Café"`` -> ``cafe``); a name with a letter
    that has none also gets ``_`` and 8 hex digits of its hash (``"日本語"`` ->
    ``"<hash>"``, ``"Straße"`` -> ``"stra_e_<hash>"``). Raises ``ValueError`` for a name
    with no letter or digit, or whose key is longer than :data:`MAX_KEY_LENGTH`.
    """
    if not isinstance(name, str):
        raise TypeError(f"A step name must be a string, got {type(name).__name__}: {name!r}.")
    name = normalize_name(name)
    readable, lost = _ascii_form(name)
    safe = _UNSAFE.sub("_", readable.lower()).strip("_")
    if lost:
        digest = hashlib.sha256(name.lower().encode("utf-8")).hexdigest()[:_HASH_LENGTH]
        safe = f"{safe}_{digest}" if safe else digest
    if not safe:
        raise ValueError(
            f"Step name {name!r} has no letter or digit, so it cannot become an asset key "
            "or a folder name. Fix: give the step a name such as 'Generate Abstracts'."
        )
    if len(safe) > MAX_KEY_LENGTH:
        raise ValueError(
            f"the name makes the asset key and folder name {safe[:40]!r}... of {len(safe)} "
            f"characters, and a folder name can have at most {MAX_KEY_LENGTH} here (a file "
            f"name has at most 255 bytes, and the step's lock file adds '.lock'). Fix: "
            f"shorten the step name by at least {len(safe) - MAX_KEY_LENGTH} characters (put "
            "the long description in the step's arguments or a comment)."
        )
    if keyword.iskeyword(safe):
        safe += "_"  # Dagster refuses Python keywords ("in", "for") as asset names
    return safe


def _ascii_form(name: str) -> tuple[str, bool]:
    """``name`` with each non-ASCII character replaced by its ASCII decomposition (accents
    dropped), or a space where it has none; and whether a letter or digit had none."""
    if name.isascii():
        return name, False
    parts, lost = [], False
    for char in name:
        if char.isascii():
            parts.append(char)
            continue
        decomposed = unicodedata.normalize("NFKD", char)
        ascii_part = "".join(c for c in decomposed if c.isascii() and not unicodedata.combining(c))
        if not ascii_part.strip() and char.isalnum():
            lost = True
        parts.append(ascii_part or " ")
    return "".join(parts), lost


#: Entries of a step folder (and of the output folder) a step's folder must not take.
RESERVED_FOLDER_NAMES = frozenset(
    {"_backups", "_dataset", "_model", "_checkpoints", "_model_state", "_shards", "_partitions", "run_output"}
)


def folder_name(name: str) -> str:
    """The step's folder in the output folder, by DataDreamer's rule
    (``safe_fn(name, allow_slashes=True, to_lower=True)``): ``" / "`` (a step run inside
    a SuperStep) becomes ``/``, spaces ``-``; only letters, digits, ``-`` and ``_`` are
    kept; lower case. ``"Generate Research Paper Abstracts"`` ->
    ``"generate-research-paper-abstracts"``, ``"my-step (save #2)"`` -> ``"my-step-save-2"``,
    ``"Outer / Inner"`` -> ``"outer/inner"``. Raises ``ValueError`` (with the fix) for a
    name whose folder would be empty, reserved, too long, or nested by a stray ``/``.
    """
    if not isinstance(name, str):
        raise TypeError(f"A step name must be a string, got {type(name).__name__}: {name!r}.")
    name = normalize_name(name)
    parts = name.split(" / ")
    if any("/" in part for part in parts):
        raise ValueError(
            f"Step name {name!r} contains '/', which would nest its folder (DataDreamer's rule: "
            "' / ' only joins the names of steps run inside a SuperStep). Fix: use another "
            "character, such as '-'."
        )
    folder = _safe_fn("/".join(part.replace(" ", "-") for part in parts)).lower()
    segments = folder.split("/")
    for segment in segments:
        if not segment:
            raise ValueError(
                f"Step name {name!r} gives the folder {folder!r}, and a folder name needs a letter, "
                "digit, '-' or '_'. Fix: give the step a name such as 'Generate Abstracts'."
            )
        if segment in RESERVED_FOLDER_NAMES:
            raise ValueError(
                f"Step name {name!r} gives the folder {segment!r}, a name the output folder's "
                f"layout uses. Fix: give the step another name, such as '{segment.strip('_')} step'."
            )
        if len(segment.encode("utf-8")) > MAX_KEY_LENGTH:
            raise ValueError(
                f"the name makes the folder name {segment[:40]!r}... of {len(segment.encode())} bytes, "
                f"and a folder name can have at most {MAX_KEY_LENGTH} here. Fix: shorten the step name."
            )
    return folder


def _safe_fn(value: str) -> str:
    """DataDreamer's ``safe_fn`` (``allow_slashes=True``) after its replacements: the
    letters, digits, ``-``, ``_`` and ``/`` of ``value``, whitespace stripped at the ends."""
    return "".join(c for c in value if c.isalnum() or c in "-_/").strip()


def legacy_folder_name(name: str) -> str:
    """The folder releases up to 0.1.x gave step ``name``: its asset key (:func:`safe_name`
    of the whole name, so ``"Outer / Inner"`` was ``outer_inner``)."""
    return safe_name(name)


def derived_names(base: str, transform: str | None = None) -> Iterator[str]:
    """The names DataDreamer gives a step an operation derives, in the order it tries them:
    ``"Src (take)"``, ``"Src (take #2)"``, ``"Src (take #3)"``...; without a transform
    ``"concat(A, B)"``, ``"concat(A, B) #2"``...; the first one not taken is used."""
    if transform:
        yield f"{base} ({transform})"
    else:
        yield base
    number = 2
    while True:
        yield f"{base} ({transform} #{number})" if transform else f"{base} #{number}"
        number += 1


#: The names of the SuperSteps being expanded (their steps are named ``"Outer / Inner"``).
SUPER_STEP_PREFIXES: list[str] = []


def scoped_name(name: str) -> str:
    """``name`` inside the SuperSteps being expanded: ``"Outer / Inner"`` (DataDreamer's rule)."""
    if not SUPER_STEP_PREFIXES or not isinstance(name, str):
        return name
    return " / ".join([*SUPER_STEP_PREFIXES, name.split(" / ")[-1]])
