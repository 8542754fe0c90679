"""The canonical form of every kind of value, exactly as step.json documents it, and the
fingerprint pinned to its value: a change to either re-runs every user's pipeline. Written to
kill the mutants ``make mutants`` found alive in ``fingerprint.py`` (see docs/mutants.md)."""

from __future__ import annotations

import hashlib
import logging
import math
import types

import pytest

from dreamer_dagster.fingerprint import DataFile, FingerprintError, canonical, fingerprint, hash_file

LIMIT = 3
SCALE = (2, 3)
LOGGER = logging.getLogger("dreamer_dagster.tests")
CLIENT = object()  # a value with no stable fingerprint, as a default argument


def helper(x):
    return x


def sample(row, scale=2, *, offset=1):
    return helper(row) * scale + offset > LIMIT


def with_comprehension(rows):
    return [row * SCALE[0] for row in rows]


def reads_a_logger(row):
    return LOGGER.name


class Identity:
    """An object whose identity is the mapping it is given (hashable, as objects are)."""

    def __init__(self, described):
        self.described = described

    def fingerprint_identity(self):
        return self.described


class Counter:
    """A callable object: its class source and its attributes."""

    def __init__(self, start):
        self.start = start

    def __call__(self, row):
        return row + self.start


def refused(value) -> str:
    with pytest.raises(FingerprintError) as raised:
        canonical(value)
    return str(raised.value)


NO_FINGERPRINT = (
    "has no stable fingerprint. Pass plain data (str, numbers, lists, dicts), a function, a file path, "
    "a model object from dreamer_dagster, or a column reference instead."
)


# -- plain data ------------------------------------------------------------------------------


def test_plain_values_are_themselves_and_the_rest_is_tagged():
    assert canonical(None) is None and canonical(True) is True and canonical("é") == "é"
    assert canonical(7) == 7 and canonical(1.5) == 1.5
    assert canonical(math.nan) == {"float": "nan"}
    assert canonical(math.inf) == {"float": "inf"} and canonical(-math.inf) == {"float": "-inf"}
    assert canonical(b"abc") == {"bytes_sha256": hashlib.sha256(b"abc").hexdigest()}
    assert canonical((1, [2, (3,)])) == [1, [2, [3]]]
    assert canonical({10, 9}) == {"set": [10, 9]}  # sorted by JSON text: "10" < "9"
    assert canonical(frozenset({"b", "a"})) == {"set": ["a", "b"]}
    # Set members that are objects sort by their JSON with its keys sorted.
    first, second = Identity({"z": 1, "a": 2}), Identity({"z": 2, "a": 1})
    assert canonical({first, second}) == {"set": [{"z": 2, "a": 1}, {"z": 1, "a": 2}]}
    assert canonical(str) == {"class": "builtins.str"} and canonical(Identity) == {
        "class": f"{__name__}.Identity"
    }
    assert canonical(math) == {"module": "math"}


def test_dicts_keep_string_keys_and_list_other_keys_as_sorted_pairs():
    assert canonical({"b": 1, "a": [2]}) == {"b": 1, "a": [2]}
    assert canonical({1: "x", "1": "y"}) == {"dict_items": [["1", "y"], [1, "x"]]}  # sorted by JSON
    assert canonical({(2, 1): "t", None: "n"}) == {"dict_items": [[[2, 1], "t"], [None, "n"]]}
    assert canonical({2: "b", 10: "a"}) == {"dict_items": [[10, "a"], [2, "b"]]}
    # A key that is itself an object sorts by its own JSON, with its keys sorted.
    keys = {frozenset({"z"}): 1, frozenset({"a"}): 2}
    assert canonical(keys) == {"dict_items": [[{"set": ["a"]}, 2], [{"set": ["z"]}, 1]]}
    # Pairs sort by their key's JSON with its keys sorted, whatever the key holds.
    first, second = (Identity({"z": 1, "a": 2}),), (Identity({"z": 2, "a": 1}),)
    assert canonical({first: "one", second: "two"}) == {
        "dict_items": [[[{"z": 2, "a": 1}], "two"], [[{"z": 1, "a": 2}], "one"]]
    }
    assert "dict key" in refused({object(): 1}) and "is not a string or number." in refused({object(): 1})


@pytest.mark.parametrize(
    "shape",
    [
        {"set": [1]},
        {"file": "x", "sha256": "y"},
        {"path": "p"},
        {"function": "f"},
        {"function": "f", "source": "s", "globals": {}},
        dict.fromkeys(
            ("function", "source", "bytecode", "consts", "defaults", "kwdefaults", "captured", "globals"), 0
        ),
        {"dict": {}},
    ],
)
def test_a_plain_dict_shaped_like_a_tagged_form_is_wrapped(shape):
    assert canonical(shape) == {"dict": shape}


@pytest.mark.parametrize("shape", [{"source": "s"}, {"function": "f", "other": 1}, {"file": "x"}])
def test_a_plain_dict_not_shaped_like_a_tagged_form_is_itself(shape):
    assert canonical(shape) == shape


def test_the_fingerprint_is_pinned():
    # sha256 of the canonical JSON (keys sorted, no spaces, ASCII escapes), first 16 hex digits.
    value = {"b": [1, 2.5, None], "a": "é"}
    text = '{"a":"\\u00e9","b":[1,2.5,null]}'
    assert fingerprint(value) == hashlib.sha256(text.encode()).hexdigest()[:16] == "84afbf1d4853005f"


# -- objects, files, classes -----------------------------------------------------------------


def test_an_objects_identity_stands_for_it():
    assert canonical(Identity({"b": (1,), "a": {"file": "f", "sha256": "s"}})) == {
        "b": [1],
        "a": {"dict": {"file": "f", "sha256": "s"}},
    }
    assert canonical(Identity([1, (2,)])) == [1, [2]]  # an identity that is not a mapping
    assert canonical(Identity({1: "x"})) == {"dict_items": [[1, "x"]]}


def test_files_by_content_and_other_paths_by_name(tmp_path):
    data = tmp_path / "rows.json"
    data.write_bytes(b"[1, 2]")
    digest = hashlib.sha256(b"[1, 2]").hexdigest()
    assert hash_file(data) == digest and hash_file(str(data)) == digest
    assert canonical(data) == {"file": "rows.json", "sha256": digest}
    assert canonical(DataFile(data)) == {"file": "rows.json", "sha256": digest}
    assert canonical(DataFile(str(data), sha256="known")) == {"file": "rows.json", "sha256": "known"}
    assert DataFile(str(data)).path == data and DataFile(data, "known").sha256 == "known"
    assert canonical(tmp_path / "missing") == {"path": str(tmp_path / "missing")}
    # A file read in chunks hashes as a whole, and again after it changes.
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 1000)
    assert hash_file(big, chunk_size=64) == hashlib.sha256(b"x" * 1000).hexdigest()
    big.write_bytes(b"y" * 1001)
    assert hash_file(big, chunk_size=64) == hashlib.sha256(b"y" * 1001).hexdigest()


def test_a_pydantic_model_class_by_its_schema_and_a_dataclass_is_refused():
    import pydantic

    class Title(pydantic.BaseModel):
        title: str

    assert canonical(Title) == {"pydantic_schema": Title.model_json_schema()}
    assert canonical({"schema": Title})["schema"]["pydantic_schema"]["properties"] == {
        "title": {"title": "Title", "type": "string"}
    }

    class Plain:
        model_json_schema = None  # looks like pydantic, has no fields: a plain class

    assert canonical(Plain) == {"class": f"{__name__}.{Plain.__qualname__}"}


def test_a_callable_object_by_its_class_source_and_attributes():
    described = canonical(Counter(5))
    assert described == {
        "callable_object": f"{__name__}.Counter",
        "source": described["source"],
        "state": {"start": 5},
    }
    assert described["source"].startswith("class Counter:\n")
    assert "def __call__(self, row):" in described["source"]


def test_values_without_a_stable_identity_are_refused_where_they_are():
    assert refused(object()) == f"value: a builtins.object {NO_FINGERPRINT}"
    assert refused({"a": [1, object()]}) == f"value['a'][1]: a builtins.object {NO_FINGERPRINT}"
    assert refused(Identity({"x": object()})) == f"value['x']: a builtins.object {NO_FINGERPRINT}"
    assert refused(Identity([1, object()])) == f"value[1]: a builtins.object {NO_FINGERPRINT}"
    assert refused({"a": Identity([object()])}) == f"value['a'][0]: a builtins.object {NO_FINGERPRINT}"

    class Dataset:  # named like datasets' class, from another module: no stable fingerprint
        pass

    assert refused(Dataset()) == f"value: a {__name__}.{Dataset.__qualname__} {NO_FINGERPRINT}"
    assert refused({1: object()}) == f"value[1]: a builtins.object {NO_FINGERPRINT}"
    assert refused({frozenset({(object(),)}): 1}) == f"value key[0]: a builtins.object {NO_FINGERPRINT}"
    assert refused({frozenset({(object(),)})}) == f"value[0]: a builtins.object {NO_FINGERPRINT}"
    counter = Counter(object())
    assert refused(counter) == f"value.__dict__['start']: a builtins.object {NO_FINGERPRINT}"

    class WithToDict:
        def to_dict(self):
            return {}

    assert refused(WithToDict()) == f"value: a {__name__}.{WithToDict.__qualname__} {NO_FINGERPRINT}"


def test_a_peft_config_by_its_settings():
    from peft import LoraConfig

    from dreamer_dagster.library_defaults import normalize_peft_config

    config = LoraConfig(r=4, lora_alpha=8)
    assert canonical(config) == {"peft_config": canonical(normalize_peft_config(config))}
    assert canonical(config) != canonical(LoraConfig(r=8, lora_alpha=8))


def test_a_quantization_config_by_its_settings_and_no_other_transformers_object():
    from transformers import BitsAndBytesConfig

    assert canonical(BitsAndBytesConfig(load_in_4bit=True)) == {
        "quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": True}
    }

    class Settings:  # a transformers object with to_dict, but no quant_method
        def to_dict(self):
            return {}

    Settings.__module__ = "transformers.configuration_utils"
    assert (
        refused(Settings())
        == f"value: a transformers.configuration_utils.{Settings.__qualname__} {NO_FINGERPRINT}"
    )


def test_a_str_that_carries_its_identity_is_described_by_it():
    class TrainedModelPath(str):
        def fingerprint_identity(self):
            return {"trained_from": "0123456789abcdef"}

    assert canonical(TrainedModelPath("/models/x")) == {"trained_from": "0123456789abcdef"}
    assert canonical("/models/x") == "/models/x"


# -- callables -------------------------------------------------------------------------------


def test_a_function_by_its_source_defaults_and_the_plain_globals_it_reads():
    assert canonical(sample) == {
        "function": "sample",
        "source": "def sample(row, scale=2, *, offset=1):\n    return helper(row) * scale + offset > LIMIT\n",
        "defaults": [2],
        "kwdefaults": {"offset": 1},
        "globals": {
            "LIMIT": 3,
            "helper": {"function": "helper", "source": "def helper(x):\n    return x\n"},
        },
    }
    # Globals read inside a comprehension count; a global logger does not (it is no data).
    assert canonical(with_comprehension)["globals"] == {"SCALE": [2, 3]}
    assert "globals" not in canonical(reads_a_logger)


def test_a_closure_by_what_it_captures():
    def make(limit, log):
        return lambda row: log.name if len(row) > limit else None

    assert canonical(make(3, LOGGER)) == {
        "function": "test_a_closure_by_what_it_captures.<locals>.make.<locals>.<lambda>",
        "source": "lambda row: log.name if len(row) > limit else None",
        "captured": {"limit": 3, "log": {"opaque": "logging.Logger"}},
    }

    def outer():
        def inner():
            return (later, LIMIT)

        return inner
        later = 1  # never runs: ``later`` stays an empty cell

    assert canonical(outer())["captured"] == {}
    assert canonical(outer())["globals"] == {"LIMIT": 3}

    def outer_two():
        def inner():
            return (a_later, b_value)

        b_value = 1
        return inner
        a_later = 2  # never runs: an empty cell before a filled one

    assert canonical(outer_two())["captured"] == {"b_value": 1}


def makes_a_class():
    class Local:
        limit = LIMIT  # a class body reads its globals by name

    return Local


def test_globals_read_in_a_class_body_count():
    assert canonical(makes_a_class)["globals"] == {"LIMIT": 3, "__name__": __name__}


def test_a_function_without_source_by_its_bytecode_and_constants():
    namespace: dict = {}
    exec("def f(x, y=(1,)):\n    g = lambda: 2\n    return x + 41\n", namespace)
    f = namespace["f"]
    assert canonical(f) == {
        "function": "f",
        "bytecode": hashlib.sha256(f.__code__.co_code).hexdigest(),
        "consts": ["None", "41"],  # the lambda's code object is left out
        "defaults": [[1]],
    }


def test_bound_methods_and_builtins():
    counter = Counter(2)
    assert canonical(counter.__call__) == {
        "method": "Counter.__call__",
        "self": canonical(counter),
        "function": {
            "function": "Counter.__call__",
            "source": "def __call__(self, row):\n    return row + self.start\n",
        },
    }
    assert canonical(str.upper) == {"builtin": "builtins.str.upper"}
    assert canonical(len) == {"builtin": "builtins.len"}
    assert canonical(math.sqrt) == {"builtin": "math.sqrt"}


def test_errors_name_the_default_or_capture_they_come_from():
    def with_default(row, client=CLIENT):
        return row

    message = refused(with_default)
    assert message == f"value defaults[0]: a builtins.object {NO_FINGERPRINT}"

    def with_kwdefault(row, *, client=CLIENT):
        return row

    assert refused(with_kwdefault) == f"value defaults['client']: a builtins.object {NO_FINGERPRINT}"
    bound = types.MethodType(with_default, object())
    assert refused(bound) == f"value.__self__: a builtins.object {NO_FINGERPRINT}"
    method = types.MethodType(with_default, 5)
    assert refused(method) == f"value defaults[0]: a builtins.object {NO_FINGERPRINT}"


def test_a_lambda_by_its_own_text_among_others_in_its_statement():
    pair = (lambda a: a + 1, lambda b, *, c: b * c)
    assert canonical(pair[0])["source"] == "lambda a: a + 1"
    assert canonical(pair[1])["source"] == "lambda b, *, c: b * c"
    twins = (lambda x: x + 1, lambda x: x * 2)
    first, second = canonical(twins[0])["source"], canonical(twins[1])["source"]
    both = "lambda x: x + 1\nlambda x: x * 2\n#"
    assert first.startswith(both) and second.startswith(both) and first != second
    assert '"1"' in first[len(both) :] and '"2"' in second[len(both) :]  # the constants tell them apart
    table = {
        "f": lambda r: r.upper(),
    }
    text = canonical(table["f"])["source"]  # the lines alone do not parse: the lines, then the names
    assert text.startswith('"f": lambda r: r.upper(),\n#[') and text.endswith('"upper"]')


# -- datasets --------------------------------------------------------------------------------


def framed(*texts: str) -> str:
    """The row hash of an iterable dataset: each text prefixed by its 8-byte big-endian length."""
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode()
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()[:16]


def test_a_dataset_by_its_features_and_its_arrow_data():
    import datasets

    rows = datasets.Dataset.from_dict({"a": [1, 2], "b": ["x", "y"]})
    assert canonical(rows) == canonical(datasets.Dataset.from_dict({"a": [1, 2], "b": ["x", "y"]}))
    assert canonical(rows) != canonical(datasets.Dataset.from_dict({"a": [1, 3], "b": ["x", "y"]}))
    assert canonical(rows) != canonical(rows.select([1, 0]))
    features = datasets.Features({"a": datasets.Value("int64")})
    empty = datasets.Dataset.from_dict({"a": []}, features=features)
    # No rows: the features alone, as sorted JSON.
    text = '{"a": {"_type": "Value", "dtype": "int64"}}'
    assert canonical(empty) == {"dataset": hashlib.sha256(text.encode()).hexdigest()[:16]}
    other = datasets.Dataset.from_dict({"a": []}, features=datasets.Features({"a": datasets.Value("string")}))
    assert canonical(other) != canonical(empty)


def numbers(n):
    for i in range(n):
        yield {"i": i}


def test_a_generated_iterable_dataset_by_its_generator_without_running_it():
    import datasets

    def never(n):
        raise AssertionError("the generator ran")
        yield {}

    lazy = datasets.IterableDataset.from_generator(never, gen_kwargs={"n": 3})
    described = {"generator": canonical(never), "gen_kwargs": {"n": 3}, "features": None}
    text = json_text(described)
    assert canonical(lazy) == {"dataset": hashlib.sha256(text.encode()).hexdigest()[:16]}
    three = datasets.IterableDataset.from_generator(numbers, gen_kwargs={"n": 3})
    assert canonical(three) == canonical(
        datasets.IterableDataset.from_generator(numbers, gen_kwargs={"n": 3})
    )
    assert canonical(three) != canonical(
        datasets.IterableDataset.from_generator(numbers, gen_kwargs={"n": 4})
    )
    typed = datasets.IterableDataset.from_generator(
        numbers, gen_kwargs={"n": 3}, features=datasets.Features({"i": datasets.Value("int32")})
    )
    assert canonical(typed) != canonical(three)

    def with_client(n, client=CLIENT):
        yield {"i": n}

    bad = datasets.IterableDataset.from_generator(with_client, gen_kwargs={"n": 1})
    assert refused(bad) == f"IterableDataset generator defaults[0]: a builtins.object {NO_FINGERPRINT}"


def json_text(value) -> str:
    import json

    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def test_any_other_iterable_dataset_by_its_rows():
    import datasets
    from datasets.iterable_dataset import ExamplesIterable

    streamed = datasets.Dataset.from_dict({"b": ["x", "y"], "a": [1, 2]}).to_iterable_dataset()
    features = '{"a": {"_type": "Value", "dtype": "int64"}, "b": {"_type": "Value", "dtype": "string"}}'
    assert canonical(streamed) == {"dataset": framed(features, '{"a": 1, "b": "x"}', '{"a": 2, "b": "y"}')}

    def rows(**_):
        yield 0, {"z": {"y": 1, "x": [2]}}

    plain = datasets.IterableDataset(ExamplesIterable(rows, {}))  # a generator without a builder
    assert canonical(plain) == {"dataset": framed("null", '{"z": {"x": [2], "y": 1}}')}

    def bad_rows(**_):
        yield 0, {"client": object()}

    unreadable = datasets.IterableDataset(ExamplesIterable(bad_rows, {}))
    assert refused(unreadable) == f"IterableDataset row['client']: a builtins.object {NO_FINGERPRINT}"
