"""DataDreamer's way of writing a step: ``setup()`` registers, ``run()`` computes.

A DataDreamer custom step ports unchanged::

    from dreamer_dagster.steps import DataCardType, LazyRows, Step

    class Shout(Step):
        def setup(self):
            self.register_input("texts", help="The texts to shout.")
            self.register_arg("suffix", required=False, default="!", help="Appended.")
            self.register_output("shouts", help="The shouted texts.")
            self.register_data_card(DataCardType.LICENSE, "MIT")

        def run(self):
            suffix = self.args["suffix"]
            texts = self.inputs["texts"]
            return LazyRows((t.upper() + suffix for t in texts), total_num_rows=len(texts))

A class that defines ``setup()`` is such a step (the project's own steps declare
``INPUTS`` / ``ARGS`` / ``OUTPUTS`` and take ``run(context)`` instead; both kinds
mix freely). At declaration ``setup()`` fills the registrations, which are then
checked, fingerprinted and turned into an asset exactly as the class attributes
are. When the asset runs, ``self.inputs[name]`` is the column's values (a
:class:`~dreamer_dagster.steps.output_data.ColumnData`: iterate it, ``len``,
``[i]``), ``self.args[name]`` the argument with deferred values resolved and models
ready to call (bound to the model cache), and ``run()`` returns the rows in any of
DataDreamer's forms (:func:`normalize_output`), streamed to disk.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .run_context import StepRunContext
    from .step import Step

__all__ = ["LazyRowBatches", "LazyRows", "RegistrationMethods", "help_text", "normalize_output"]

_REQUIRED_HELP = object()


class LazyRows:
    """Rows given one at a time: an iterable, a generator function or an ``IterableDataset``
    of row dicts (or tuples in registered-output order, or values for a single output).

    Every step's rows stream to its ``_dataset`` here (Dagster hands outputs between
    processes through the output folder), so ``save`` changes nothing and a step never
    holds its rows in memory either way.
    """

    def __init__(
        self,
        value: Iterable[Any] | Callable[[], Iterable[Any]],
        total_num_rows: int | None = None,
        auto_progress: bool = True,
        save: bool = False,
        save_writer_batch_size: int | None = None,
    ):
        if not (callable(value) or isinstance(value, Iterable)):
            raise TypeError(
                f"{type(self).__name__} takes an iterable or a generator function, got {value!r}."
            )
        self.value = value
        if total_num_rows is not None:
            total_num_rows = max(0, total_num_rows)
        elif type(value).__name__ == "OutputIterableDataset":  # DataDreamer: its num_rows
            total_num_rows = getattr(value, "num_rows", None)
        self.total_num_rows = total_num_rows
        if total_num_rows is None and auto_progress:  # DataDreamer's warning, at construction
            kind = type(self).__name__
            warnings.warn(
                "You did not specify `total_num_rows`, so we cannot automatically update the "
                f"progress % for this step. Either specify {kind}(..., total_num_rows=#) or, to "
                f"disable this warning, specify {kind}(.., auto_progress = False)",
                stacklevel=2,
            )
        self.auto_progress = auto_progress
        self.save = save
        self.save_writer_batch_size = save_writer_batch_size

    def items(self) -> Iterator[Any]:
        value = self.value() if callable(self.value) and not isinstance(self.value, Iterable) else self.value
        return iter(value)


class LazyRowBatches(LazyRows):
    """Rows given a batch at a time: each item a dict of columns, a list of row dicts, or a
    tuple of columns in registered-output order."""


class RegistrationMethods:
    """Mixin of :class:`~dreamer_dagster.steps.Step`: ``setup()`` and the ``register_*`` calls."""

    def setup(self) -> None:
        """Register inputs, args, outputs and data card entries (a DataDreamer-style step
        overrides this; the project's own steps use class attributes instead)."""
        raise NotImplementedError(f"{type(self).__name__}.setup")

    @classmethod
    def uses_registration(cls) -> bool:
        """Whether the class is written DataDreamer's way (it defines ``setup()``)."""
        return getattr(cls, "setup", None) is not RegistrationMethods.setup

    def _run_setup(self) -> None:
        """Fill the registrations from ``setup()`` (instance attributes over the class's)."""
        self.INPUTS: dict[str, bool] = {}
        self.ARGS: dict[str, Any] = {}
        self.OUTPUTS: tuple[str, ...] = ()
        self.ACCEPTS_ANY_ARGS = False
        self._help: dict[str, dict[str, Any]] = {"inputs": {}, "args": {}, "outputs": {}}
        self._registered_card: dict[str, list[str]] = {}
        self._in_setup = True
        try:
            self.setup()
        finally:
            self._in_setup = False
        if not self.OUTPUTS:  # DataDreamer: ValueError("The step must register at least one output.")
            from .step import StepDeclarationError

            raise StepDeclarationError(
                f"Step {getattr(self, 'name', '?')!r} ({type(self).__name__}): setup() registered no "
                "output; the step must register at least one output. Fix: call "
                "self.register_output('column_name') in setup()."
            )

    def _registering(self, what: str) -> None:
        if not getattr(self, "_in_setup", False):
            raise RuntimeError(
                f"{type(self).__name__}.{what}() is called in setup() only (the step is already declared)."
            )

    def register_input(self, input_column_name: str, required: bool = True, help: str | None = None) -> None:
        """Register an input column (a column reference at declaration, its values at run time)."""
        self._registering("register_input")
        if not isinstance(input_column_name, str):
            raise TypeError(f"Expected str, got {type(input_column_name)}.")
        self.INPUTS[input_column_name] = bool(required)
        self._help["inputs"][input_column_name] = help if required else f"{help or ''} (optional)".strip()

    def register_arg(
        self,
        arg_name: str,
        required: bool = True,
        default: Any = None,
        help: str | None = None,
        default_help: str | None = None,
    ) -> None:
        """Register an argument (``"**kwargs"``: any other argument is accepted too)."""
        from .step import REQUIRED

        self._registering("register_arg")
        if not isinstance(arg_name, str):
            raise TypeError(f"Expected str, got {type(arg_name)}.")
        if required and default is not None:
            raise ValueError(f"`default` cannot be set if arg `{arg_name}` is required.")
        if arg_name == "**kwargs":
            self.ACCEPTS_ANY_ARGS = True
            self._help["args"][arg_name] = f"{help or ''} (optional)".strip()
            return
        self.ARGS[arg_name] = REQUIRED if required else default
        if required:
            self._help["args"][arg_name] = help
        else:
            shown = "(optional)" if default is None and default_help is None else None
            shown = shown or f"(optional, defaults to {default_help or repr(default)})"
            self._help["args"][arg_name] = f"{help or ''} {shown}".strip()

    def register_output(self, output_column_name: str, help: str | None = None) -> None:
        """Register an output column (in the order ``run()`` gives tuples)."""
        self._registering("register_output")
        if not isinstance(output_column_name, str):
            raise TypeError(f"Expected str, got {type(output_column_name)}.")
        if output_column_name not in self.OUTPUTS:
            self.OUTPUTS = (*self.OUTPUTS, output_column_name)
        self._help["outputs"][output_column_name] = help

    def register_data_card(self, data_card_type: str, data_card: Any) -> None:
        """Add a data card entry (``DataCardType.LICENSE``...), in setup() or while running."""
        if not isinstance(data_card_type, str):
            raise TypeError(f"Expected str, got {type(data_card_type)}.")
        if data_card is None:
            return
        value = data_card if isinstance(data_card, str) else json.dumps(data_card, default=str)
        context = getattr(self, "_run_context", None)
        if context is not None:
            context.add_card_entry(data_card_type, value)
            return
        values = self.__dict__.setdefault("_registered_card", {}).setdefault(data_card_type, [])
        if value not in values:
            values.append(value)

    def registered_card(self) -> dict[str, list[str]]:
        """The data card entries registered in ``setup()``."""
        return dict(self.__dict__.get("_registered_card") or {})

    def pickle(self, value: Any, *args: Any, **kwargs: Any) -> bytes:
        """``value`` as bytes in DataDreamer's format (dill), to store a value Arrow cannot
        in a row. The step's step.json then says ``"pickled": true`` and reads of its rows
        give the values back (see :mod:`~dreamer_dagster.pickling`)."""
        from ..pickling import pickle_value

        context = getattr(self, "_run_context", None)
        if context is not None:
            context.pickled = True
        else:  # pickled before its run (a value run() will return): its run marks it
            self.__dict__["_pickled_before_run"] = True
        return pickle_value(value, *args, **kwargs)

    def unpickle(self, value: bytes) -> Any:
        """A value stored with :meth:`pickle` (bytes; a value already restored is returned).

        A pickled column is code: unpickling runs code, so only load output folders you
        trust. The rows reach a step only after its input's files were checked against the
        manifest its step.json recorded (see integrity.py), so bytes planted in a step
        folder after it finished are never unpickled."""
        from ..pickling import is_pickled_value, unpickle_value

        if not isinstance(value, bytes):
            return value  # read from a pickled step: already restored
        if is_pickled_value(value):
            return unpickle_value(value)
        import pickle

        return pickle.loads(value)  # noqa: S301 - bytes of an earlier release's step.pickle

    def get_run_output_folder_path(self) -> str:
        """``<output>/<step>/run_output``: a folder the step may keep files in (DataDreamer's;
        made on first call, while the step runs or, in a ``Pipeline`` block, after)."""
        context = getattr(self, "_run_context", None)
        if context is not None:
            step_path = context.step_folder.path
        elif getattr(self, "pipeline_output_folder", None) is not None and not self.export_folder().remote:
            step_path = self.export_folder().step(self.folder).path
        else:
            raise RuntimeError(
                f"Step {self.name!r}: get_run_output_folder_path() needs the step's folder: call it in "
                "run(), or declare the step in a `with Pipeline(folder):` block on a local folder."
            )
        folder = Path(step_path) / "run_output"
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder)


# -- running a DataDreamer-style step ----------------------------------------------------


def execute_registered(step: Step, context: StepRunContext) -> dict:
    """Run ``step.run()`` with its inputs' values and ready args; write its rows."""
    from .asset_factory import execute_dataset_step

    with bound(step, context):
        if step.__dict__.get("_pickled_before_run"):
            context.pickled = True
        output = step.run()
        rows = normalize_output(step, output)
        deferred = None
        if _iterable_output(output) and isinstance(rows, Iterator):
            from .iterable_types import DeferredTypeError  # DataDreamer's type rules, read-time error

            deferred = DeferredTypeError(step.name)
            rows = deferred.rows(rows)
        fields = execute_dataset_step(step, context, rows=rows)
    if deferred is not None and deferred.message and context.log is not None:
        context.log.warning(f"{deferred.message} (raised when its rows are read, as DataDreamer does)")
    if _iterable_output(output):  # DataDreamer's OutputIterableDataset (steps/lazy.py)
        fields["iterable"] = {
            "total_num_rows": output.total_num_rows,
            **(deferred.record() if deferred else {}),
        }
    return fields


def _iterable_output(output: Any) -> bool:
    """Whether DataDreamer would give this ``run()`` value an iterable output: rows on demand
    (``LazyRows``, not saved), not a ``datasets.Dataset`` in one."""
    if not isinstance(output, LazyRows) or output.save:
        return False
    return type(output.value).__name__ != "Dataset"


@contextmanager
def bound(step: Step, context: StepRunContext) -> Iterator[None]:
    """While the block runs, ``step.inputs`` holds the columns' values and ``step.args``
    the resolved args (models bound to the run); the declarations come back after."""
    from .output_data import ColumnData

    declared_inputs, declared_args = step.inputs, step.args
    values = {
        name: ColumnData(ref.step, context.dataset(ref.step).select_columns([ref.column]))
        for name, ref in declared_inputs.items()
    }
    ready = {name: _ready(value, context) for name, value in declared_args.items()}
    step.inputs, step.args = values, ready
    step._run_context = context
    step.__dict__.pop("_progress", None)
    try:
        yield
    finally:
        step.inputs, step.args = declared_inputs, declared_args
        step._run_context = None


def _ready(value: Any, context: StepRunContext) -> Any:
    from ..model import Model

    if isinstance(value, Model):
        return context.model(value)
    if isinstance(value, list):
        return [_ready(item, context) for item in value]
    if isinstance(value, tuple):
        return tuple(_ready(item, context) for item in value)
    if isinstance(value, dict):
        return {key: _ready(item, context) for key, item in value.items()}
    return context.resolve(value)


def normalize_output(step: Step, value: Any) -> Any:
    """``run()``'s return value as rows, by DataDreamer's rules (see :mod:`.run_output`)."""
    from .run_output import normalize_output as normalize

    return normalize(step, value)


# -- help ----------------------------------------------------------------------------------


def help_text(target: Any) -> str:
    """DataDreamer's ``Step.help``: what a step class takes and gives, with the help strings
    registered in ``setup()`` (``target`` is a step class or a step)."""
    cls = target if isinstance(target, type) else type(target)
    if cls.uses_registration():
        probe = target if not isinstance(target, type) else object.__new__(cls)
        if isinstance(target, type):
            probe.name = "help"
            probe._run_setup()
        described = probe._help
    else:
        described = {
            "inputs": {name: None if required else "(optional)" for name, required in cls.INPUTS.items()},
            "args": {name: _default_help(default) for name, default in cls.ARGS.items()},
            "outputs": dict.fromkeys(cls.OUTPUTS or ()),
        }

    def block(label: str, entries: dict) -> str:
        if not entries:
            return ""
        items = ",".join(f"\n\t\t{name!r}: {text!r}" for name, text in entries.items())
        return f"\t{label} = {{{items}\n\t}},\n"

    return (
        f"{cls.__name__}(\n\tname = 'The name of the step.',\n"
        f"{block('inputs', described['inputs'])}{block('args', described['args'])}"
        f"{block('outputs', described['outputs']) or chr(9) + 'outputs = {},' + chr(10)})"
    )


def _default_help(default: Any) -> str | None:
    from .step import REQUIRED

    return None if default is REQUIRED else f"(optional, defaults to {default!r})"
