"""Fingerprints that cannot collide: property tests (hypothesis) over nested args, strings
holding the encoding's own separators, swapped field boundaries and look-alike values.

The reference for "equal" is a typed tree of the value (tuples count as lists, the one
normalization fingerprints make on purpose): equal trees give one fingerprint, in any
process; different trees never do. The hashes of files and folders (data versions) get
the same treatment over names and contents that move a boundary."""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dreamer_dagster.fingerprint import canonical, fingerprint
from dreamer_dagster.output_folder import dataset_data_version, folder_data_version
from tests.support.waiting import HANG_S

# Few characters, the encoders' own separators among them, so that equal values and
# near-misses (one separator moved) come up often.
SEPARATORS = ',:{}[]"\\ \x00\n#'
text = st.text(alphabet="ab" + SEPARATORS, max_size=6)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-3, max_value=3)
    | st.sampled_from([0.0, -0.0, 1.0, 0.5, math.inf, -math.inf, math.nan, 1e16])
    | text
    | st.binary(max_size=3)
)
keys = (
    text
    | st.integers(min_value=-2, max_value=2)
    | st.booleans()
    | st.sampled_from(
        [
            "set",
            "float",
            "path",
            "file",
            "sha256",
            "dict",
            "dict_items",
            "step",
            "column",
            "function",
            "source",
        ]
    )
)


def values() -> st.SearchStrategy:
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=3)
            | st.lists(children, max_size=3).map(tuple)
            | st.dictionaries(keys, children, max_size=3)
            | st.frozensets(st.integers(min_value=-2, max_value=2) | text, max_size=3)
        ),
        max_leaves=8,
    )


def typed(value):
    """A hashable typed tree of ``value``: what "equal inputs" means."""
    if value is None:
        return ("none",)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, float):
        return ("float", repr(value))
    if isinstance(value, str):
        return ("str", value)
    if isinstance(value, bytes):
        return ("bytes", value)
    if isinstance(value, (list, tuple)):
        return ("list", tuple(typed(item) for item in value))
    if isinstance(value, dict):
        return ("dict", frozenset((typed(k), typed(v)) for k, v in value.items()))
    if isinstance(value, (set, frozenset)):
        return ("set", frozenset(typed(item) for item in value))
    raise TypeError(value)


def encoded(value) -> str:
    """The canonical form as the text that is hashed (Python's ``False == 0`` does not apply)."""
    return json.dumps(canonical(value), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(values(), values())
def test_equal_values_share_a_fingerprint_and_different_ones_never_do(a, b):
    if typed(a) == typed(b):
        assert fingerprint(a) == fingerprint(b)
    else:
        assert encoded(a) != encoded(b)
        assert fingerprint(a) != fingerprint(b)


@PROPERTY
@given(st.lists(text, min_size=2, max_size=4), st.data())
def test_moving_a_boundary_between_fields_changes_the_fingerprint(fields, data):
    """``["ab", "c"]`` and ``["a", "bc"]`` (and the same inside dict keys and values)."""
    joined = "".join(fields)
    cut = data.draw(st.lists(st.integers(0, len(joined)), min_size=len(fields) - 1, max_size=len(fields) - 1))
    cuts = sorted(cut)
    other = [joined[i:j] for i, j in zip([0, *cuts], [*cuts, len(joined)])]
    for shape in (list, lambda f: {f[0]: f[1:]}, lambda f: {"k": f, "n": {f[0]: f[-1]}}):
        if fields != other:
            assert fingerprint(shape(fields)) != fingerprint(shape(other))
        else:
            assert fingerprint(shape(fields)) == fingerprint(shape(other))


def test_look_alike_values_stay_apart():
    """Values whose plain form would match another kind's tagged form."""
    pairs = [
        ({1: "a"}, {"1": "a"}),
        ({True: "a"}, {"True": "a"}),
        ({1: "a", "1": "b"}, {"1": "b"}),
        (frozenset([1, 2]), {"set": [1, 2]}),
        (math.nan, {"float": "nan"}),
        (b"x", {"bytes_sha256": hashlib.sha256(b"x").hexdigest()}),
        (Path("/no/such/file"), {"path": "/no/such/file"}),
        ({"set": [1]}, {"dict": {"set": [1]}}),
        (len, {"builtin": "builtins.len"}),
    ]
    for a, b in pairs:
        assert fingerprint(a) != fingerprint(b), (a, b)


SCRIPT = """
import pickle, sys, json
from dreamer_dagster.fingerprint import fingerprint
values = pickle.loads(sys.stdin.buffer.read())
print(json.dumps([fingerprint(v) for v in values]))
"""


@settings(max_examples=1, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(values(), min_size=150, max_size=150))
def test_fingerprints_are_the_same_in_other_processes(batch):
    here = [fingerprint(value) for value in batch]
    for seed in ("0", "4242"):
        result = subprocess.run(
            [sys.executable, "-c", SCRIPT],
            input=pickle.dumps(batch),
            capture_output=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            check=True,
            timeout=HANG_S,
        )
        assert json.loads(result.stdout) == here


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.text(alphabet="abc", min_size=1, max_size=3),
    st.text(alphabet="abc", min_size=1, max_size=4),
    st.data(),
)
def test_folder_hashes_frame_names_and_contents(tmp_path_factory, name, content, data):
    """A file ``a`` holding ``bc`` and a file ``ab`` holding ``c`` hash apart."""
    moved = data.draw(st.integers(1, len(content)))
    first = tmp_path_factory.mktemp("one")
    second = tmp_path_factory.mktemp("two")
    (first / name).write_text(content)
    (second / (name + content[:moved])).write_text(content[moved:])
    assert folder_data_version(first) != folder_data_version(second)
    (second / (name + content[:moved])).unlink()
    (second / name).write_text(content)
    assert folder_data_version(first) == folder_data_version(second)


def test_dataset_data_version_frames_its_files(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (one / "data-0.arrow").write_bytes(b"abc")
    (one / "data-1.arrow").write_bytes(b"d")
    (two / "data-0.arrow").write_bytes(b"ab")
    (two / "data-1.arrow").write_bytes(b"cd")
    assert dataset_data_version(one) != dataset_data_version(two)
