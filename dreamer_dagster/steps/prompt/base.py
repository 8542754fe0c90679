"""The shared base of prompt steps: LLM arguments, checks, and streamed generation.

A prompt step builds its prompts lazily (a generator function it can call
twice), sends them through ``llm.run(..., return_generator=True)`` (every call
goes through the model cache and is counted in ``context.stats``) and yields one
row per prompt, so a step of any size is written to disk in chunks and never
held in memory.
"""

from __future__ import annotations

import difflib
import inspect
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from ...cards import CITATION
from ...deferred import ColumnRef, Deferred
from ...errors import NonRetryableError
from ...llms.generation_limits import generation_arg_problem
from ..partition_key import fill_partition_key
from ..row_failures import RowFailures, check_max_failed_rows, is_failed
from ..step import REQUIRED, Step

if TYPE_CHECKING:
    from ..run_context import StepRunContext

__all__ = [
    "PromptInputError",
    "PromptStepBase",
    "PromptStepError",
    "is_deferred",
    "iter_column",
    "join_prompt",
    "labeled",
]

#: Arguments of ``LLM.run`` that a step sets itself.
RESERVED_RUN_ARGS = frozenset({"prompts", "return_generator", "total_num_prompts", "self"})

#: Arguments that change how a step runs but never what it outputs (DataDreamer's
#: ``LLM.run`` settings are accepted so its scripts port; only ``batch_size`` reaches
#: the LLM, and ``max_concurrency`` sets the bound LLM's own setting).
RUN_ONLY_ARGS = frozenset(
    {
        "batch_size",
        "lazy",
        "max_concurrency",
        "progress_interval",
        "force",
        "cache_only",
        "verbose",
        "log_level",
        "adaptive_batch_size",
        "batch_scheduler_buffer_size",
        "max_failed_rows",
    }
)

#: ``LLM.run`` parameters every prompt step accepts (None: the LLM's own default).
LLM_RUN_ARGS: dict[str, Any] = {
    "max_new_tokens": None,
    "temperature": None,
    "top_p": None,
    "n": 1,
    "stop": None,
    "repetition_penalty": None,
    "logit_bias": None,
    "seed": None,
    "response_format": None,
    "batch_size": 10,
}

#: Deliberately shared by every prompt step (DataDreamer's ``_PromptBase`` args).
COMMON_ARGS: dict[str, Any] = {
    "llm": REQUIRED,
    "post_process": None,
    "lazy": False,
    "max_failed_rows": None,
    **LLM_RUN_ARGS,
}

#: Counted by the LLM in ``context.stats`` (so in the ``dreamer/...`` materialization metadata).
PARSE_FAILURES = "response_format_failures"
#: The first few validated ``response_format`` answers, shown in the materialization metadata.
PARSED_EXAMPLES = "response_format_examples"
PARSED_EXAMPLES_SHOWN = 3


class PromptStepError(RuntimeError):
    """A prompt step failed while running; the message names the step and the model."""


class PromptInputError(PromptStepError, NonRetryableError):
    """A prompt step's input cannot be prompted (no rows, mismatched lengths, a non-text
    value): a retry would read the same input, so it is not retried."""


def labeled(label: str | None, text: str) -> str:
    """``"<label> <text>"``, or ``text`` alone when there is no label (DataDreamer's format)."""
    return f"{label} {text}" if label else str(text)


def join_prompt(
    beg_instruction: str | None = None,
    in_context_examples: Iterable[str] = (),
    end_instruction: str | None = None,
    sep: str = "\n",
) -> str:
    """DataDreamer's prompt layout: beginning, in-context examples, end, joined by ``sep``."""
    parts = [beg_instruction] if beg_instruction is not None else []
    parts.extend(in_context_examples)
    if end_instruction is not None:
        parts.append(end_instruction)
    return sep.join(parts)


class PromptStepBase(Step):
    """Base of the prompt steps: runs prompts through an LLM and streams rows.

    Subclasses list their own ``ARGS`` on top of :data:`COMMON_ARGS`, build prompts
    in ``run`` and turn ``(prompt, generation)`` pairs from :meth:`generate` into
    rows. Args that are not declared but are parameters of the LLM's ``run``
    (``frequency_penalty``... when it takes ``**kwargs``) pass through to it and
    are fingerprinted, except those in :data:`RUN_ONLY_ARGS`.
    """

    ARGS: ClassVar = COMMON_ARGS
    UNFINGERPRINTED_ARGS: ClassVar = RUN_ONLY_ARGS
    KIND: ClassVar[str] = "prompt"
    SHARD_BY: ClassVar[str | None] = "inputs"
    #: The args handed to ``llm.run`` (besides extra keyword args).
    LLM_ARGS: ClassVar[tuple[str, ...]] = tuple(LLM_RUN_ARGS)
    #: The citations this step adds to its data card (the method it implements), after its
    #: models' entries.
    CITATIONS: ClassVar[tuple[str, ...]] = ()

    def card_entries(self, context: StepRunContext) -> dict[str, list[str]]:
        entries = super().card_entries(context)  # the models' (LLM, retriever, embedder)
        if self.CITATIONS:
            entries.setdefault(CITATION, []).extend(self.CITATIONS)
        return entries

    # -- declaration ------------------------------------------------------------------

    def _check_args(self, args: dict[str, Any]) -> dict[str, Any]:
        known = {name: value for name, value in args.items() if name in self.ARGS}
        extra = {name: value for name, value in args.items() if name not in self.ARGS}
        merged = super()._check_args(known)
        for name in extra:
            self._check_extra_arg(name, merged["llm"])
        merged.update(extra)
        return merged

    def _check_extra_arg(self, name: str, llm: Any) -> None:
        """An undeclared arg passes to ``llm.run`` only if the LLM's ``run`` takes it."""
        argument = f"args[{name!r}]"
        if name in RESERVED_RUN_ARGS:
            raise self.error(f"{type(self).__name__} sets {name!r} itself; remove it.", argument)
        if name in RUN_ONLY_ARGS:
            return
        known = sorted(self.ARGS)
        try:
            parameters = inspect.signature(type(llm).run).parameters
        except (AttributeError, TypeError, ValueError):
            parameters = {}
        if name in parameters and parameters[name].kind is not inspect.Parameter.VAR_KEYWORD:
            return
        close = difflib.get_close_matches(name, known + list(parameters), n=1, cutoff=0.8)
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        if takes_any and not close:
            return
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise self.error(
            f"unknown argument.{hint} {type(self).__name__} takes args {known}, plus the "
            f"keyword arguments of {type(llm).__name__}.run.",
            argument,
        )

    def validate(self) -> None:
        args = self.args
        llm = args["llm"]
        if not _is_llm(llm):
            raise self.error(
                f"must be an LLM (such as OpenAI(...), HFTransformers(...) or default_llm()), "
                f"got {type(llm).__name__}.",
                "llm",
            )
        for name in ("batch_size", "n", "max_new_tokens", "temperature", "top_p"):
            value = args.get(name)
            if name in self.ARGS and not is_deferred(value):  # bounds: llms/generation_limits.py
                problem = generation_arg_problem(name, value)
                if problem is not None:
                    raise self.error(problem, name)
        max_new_tokens = args.get("max_new_tokens")
        known = llm.known_context_length()
        if isinstance(max_new_tokens, int) and known is not None and max_new_tokens >= known:
            raise self.error(
                f"{max_new_tokens} is more than {type(llm).__name__} {llm.model_name!r} can generate: "
                f"its context length is {known} tokens, prompt included. Fix: lower max_new_tokens.",
                "max_new_tokens",
            )
        self.check_number("repetition_penalty", minimum=0.0)
        self.check_int("seed", minimum=None, optional=True)
        for name in ("post_process",):
            value = args.get(name)
            if value is not None and not callable(value):
                raise self.error(f"must be a function, got {type(value).__name__}.", name)
        problem = check_max_failed_rows(args.get("max_failed_rows"))
        if problem is not None:
            raise self.error(problem, "max_failed_rows")
        stop = args.get("stop")
        if not (
            stop is None
            or isinstance(stop, str)
            or (isinstance(stop, (list, tuple)) and all(isinstance(s, str) for s in stop))
        ):
            raise self.error(f"must be a string or a list of strings, got {stop!r}.", "stop")
        response_format = args.get("response_format")
        if response_format is not None and not is_deferred(response_format):
            from ...llms.response_format import check

            try:
                check(response_format)
            except (TypeError, ValueError) as error:
                raise self.error(str(error), "response_format") from None

    def check_int(self, name: str, minimum: int | None = 0, optional: bool = False) -> None:
        """Declaration check: ``args[name]`` is an int (>= minimum); None if optional."""
        value = self.args.get(name)
        if is_deferred(value) or (value is None and (optional or name not in self.ARGS)):
            return
        if value is None or isinstance(value, bool) or not isinstance(value, int):
            raise self.error(f"must be an integer, got {value!r}.", name)
        if minimum is not None and value < minimum:
            raise self.error(f"must be >= {minimum}, got {value}.", name)

    def check_number(self, name: str, minimum: float | None = None, maximum: float | None = None) -> None:
        """Declaration check: ``args[name]`` is None or a number in [minimum, maximum]."""
        value = self.args.get(name)
        if value is None or is_deferred(value):
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(f"must be a number, got {value!r}.", name)
        if not math.isfinite(value):
            raise self.error(f"must be a finite number, got {value!r}. Fix: give a number.", name)
        if minimum is not None and value < minimum:
            raise self.error(f"must be >= {minimum}, got {value}.", name)
        if maximum is not None and value > maximum:
            raise self.error(f"must be <= {maximum}, got {value}.", name)

    def check_label(self, name: str) -> None:
        """Declaration check: a label or separator is None or a string."""
        value = self.args.get(name)
        if value is not None and not isinstance(value, str) and not is_deferred(value):
            raise self.error(f"must be a string or None, got {type(value).__name__}.", name)

    # -- running ----------------------------------------------------------------------

    def run_args(self, context: StepRunContext) -> dict[str, Any]:
        """The args with deferred values computed (the LLM is bound separately); a shard of a
        step sharded by ``n`` makes its part of the ``n`` rows."""
        args = context.resolve({name: value for name, value in self.args.items() if name != "llm"})
        args = fill_partition_key(args, context.partition_key)  # {partition_key} in the texts
        if context.shard is not None and self.SHARD_BY == "n":
            args["n"] = context.shard.stop - context.shard.start
        return args

    def shard_occurrences(self, context: StepRunContext, prompts: Callable[[], Iterator[str]]) -> Counter:
        """How often each prompt came in the shards before this one (the prompts built from
        the rows before this shard's)."""
        with context.rows_before_shard():
            return Counter(prompts())

    def llm_kwargs(self, args: dict[str, Any]) -> dict[str, Any]:
        """What goes to ``llm.run``: the LLM args that are set, and extra keyword args."""
        kwargs = {name: args[name] for name in self.LLM_ARGS if args.get(name) is not None}
        kwargs.update(
            {
                name: value
                for name, value in args.items()
                if name not in self.ARGS and name not in RUN_ONLY_ARGS
            }
        )
        return kwargs

    def generate(
        self,
        context: StepRunContext,
        prompts: Callable[[], Iterator[str]],
        total: int | None,
        args: dict[str, Any] | None = None,
        post_process: Callable[[Any], Any] | None = None,
    ) -> Iterator[tuple[str, Any]]:
        """``(prompt, generation)`` for each prompt, in order, streamed.

        ``prompts`` is called twice (once to feed the LLM, once to pair prompts with
        generations), so it must yield the same prompts each time. With
        ``response_format`` the LLM returns validated JSON text, or None where the
        output did not parse (counted in ``stats``, never raised); then
        ``post_process`` runs on the rows that did not fail. Failed rows follow the
        step's ``max_failed_rows`` (see :mod:`~dreamer_dagster.steps.row_failures`).
        LLM failures raise :class:`PromptStepError`.
        """
        args = self.run_args(context) if args is None else args
        llm = context.model(self.args["llm"])
        if context.shard is not None and context.shard.start > 0:
            llm.occurrence_base = dict(self.shard_occurrences(context, prompts))
        if args.get("max_concurrency") is not None and hasattr(llm, "max_concurrency"):
            llm.max_concurrency = int(args["max_concurrency"])
        kwargs = self.llm_kwargs(args)
        if post_process is None:
            post_process = args.get("post_process")
        if context.estimating:
            post_process = None  # an estimate's answers are empty: user code would only trip on them
        if args.get("response_format") is not None:
            context.stats[PARSE_FAILURES] += 0
        failures = RowFailures(self, args.get("max_failed_rows"), total, context.stats)
        failed_kind = (
            "failed response_format validation or were refused"
            if args.get("response_format") is not None
            else "were refused"
        )
        done = 0
        try:
            generations = iter(llm.run(prompts(), return_generator=True, **kwargs))
        except Exception as error:
            raise self._llm_error(llm, error, done, total) from error
        try:
            for prompt in prompts():
                try:
                    generation = next(generations)
                except StopIteration:
                    raise PromptStepError(
                        f"Step {self.name!r} ({type(self).__name__}): the LLM {_describe_llm(llm)} returned "
                        f"{done} generations for {total if total is not None else 'more'} prompts."
                    ) from None
                except Exception as error:
                    raise self._llm_error(llm, error, done, total) from error
                if kwargs.get("response_format") is not None and generation is not None:
                    examples = context.stats.setdefault(PARSED_EXAMPLES, [])
                    if len(examples) < PARSED_EXAMPLES_SHOWN:
                        examples.append(generation)
                if is_failed(generation):
                    failures.add(done, failed_kind)
                elif post_process is not None:
                    try:
                        generation = post_process(generation)
                    except Exception as error:
                        failures.post_process_error(done, error)
                        generation = None
                done += 1
                yield prompt, generation
                context.progress(done, total)
            failures.finish(done)
        finally:
            close = getattr(generations, "close", None)
            if close is not None:
                close()

    def _llm_error(self, llm: Any, error: Exception, done: int, total: int | None) -> PromptStepError:
        of_total = f" of {total}" if total is not None else ""
        return PromptStepError(
            f"Step {self.name!r} ({type(self).__name__}): the LLM {_describe_llm(llm)} failed after "
            f"{done}{of_total} prompts: {type(error).__name__}: {error}"
        )

    # -- reading inputs ----------------------------------------------------------------

    def input_length(self, context: StepRunContext, *names: str) -> int:
        """The common row count of the named inputs (an error if they differ)."""
        lengths = {name: len(context.dataset(self.inputs[name].step)) for name in names}
        if len(set(lengths.values())) > 1:
            raise PromptInputError(
                f"Step {self.name!r} ({type(self).__name__}): its inputs have different lengths: {lengths}."
            )
        if lengths and not any(lengths.values()):
            described = ", ".join(self.inputs[name].describe() for name in names)
            raise PromptInputError(
                f"Step {self.name!r} ({type(self).__name__}): its input {described} has no rows, so "
                "there is nothing to prompt. Fix: check the step that makes it (a filter that removed "
                "every row?)."
            )
        return next(iter(lengths.values())) if lengths else 0

    def iter_input(self, context: StepRunContext, name: str, chunk: int = 1000) -> Iterator[Any]:
        """The values of one input column, read from disk ``chunk`` rows at a time."""
        return iter_column(context, self.inputs[name], chunk)


def iter_column(context: StepRunContext, ref: ColumnRef, chunk: int = 1000) -> Iterator[Any]:
    """The text values of a referenced column, read ``chunk`` rows at a time (see
    ``StepRunContext.iter_column``); a value that is not text is an error naming its row."""
    for index, value in enumerate(context.iter_column(ref, chunk)):
        if value is None or isinstance(value, (list, dict, bytes)):
            what = "None (a failed row upstream?)" if value is None else f"a {type(value).__name__}"
            raise PromptInputError(
                f"Step {context.step.name!r} ({type(context.step).__name__}), input "
                f"{ref.describe()}: row {index} is {what}, not text. Fix: give a column of "
                "strings (drop empty rows first, e.g. .filter(lambda row: row[...] is not None), "
                "or turn the values into text with .map(...))."
            )
        yield value


def is_deferred(value: Any) -> bool:
    return isinstance(value, (Deferred, ColumnRef))


def _is_llm(value: Any) -> bool:
    from ...llms.llm import LLM

    return isinstance(value, LLM)


def _describe_llm(llm: Any) -> str:
    try:
        identity = llm.identity()
    except Exception:  # noqa: BLE001 - a description must never fail
        identity = {}
    name = identity.get("model_name") or getattr(llm, "model_name", None)
    text = f"{type(llm).__name__}({name!r}" if name else f"{type(llm).__name__}("
    if identity.get("base_url"):
        text += f", base_url={identity['base_url']!r}"
    return text + ")"
