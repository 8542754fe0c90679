"""``dreamer verify``: an output folder checked against its declarations, no model run.

For every step the definitions declare (an asset carrying ``dreamer/fingerprint``):

- its finished folder's fingerprint (``step.json``) equals the declared one;
- its ``_dataset`` (``_model`` for a trainer) still holds the files ``step.json``
  recorded at commit, each of its size and hash (a folder committed before step.json
  listed its files: still hashes to its recorded data version; see integrity.py);
- its data card lists every upstream step;
- a folder with a ``step.json`` that is not a finished step (truncated,
  hand-edited, its ``_dataset`` deleted) is drift too.

A step never materialized, an unfinished run and a folder no declared step owns
(left by a renamed step) are reported but are not drift. Nothing is written.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from .folder_upgrade import upgrade_output_folder
from .integrity import differences
from .io_manager import IO_MANAGER_KEY
from .output_folder import BACKUPS, IN_PROGRESS, OutputFolder

__all__ = ["Finding", "VerifyReport", "declared_steps", "verify_definitions"]

OK = "ok"
DRIFT = "drift"
MISSING = "missing"
UNFINISHED = "unfinished"
UNDECLARED = "undeclared"


@dataclass(frozen=True)
class DeclaredStep:
    """What the definitions say of one step: its key, name, fingerprint and upstream steps."""

    key: str
    name: str
    fingerprint: str
    upstream: tuple[str, ...]  # upstream step names
    folder: str = ""  # its folder in the output folder (the asset's dreamer/folder)


@dataclass
class Finding:
    """One step's verdict: ``ok``, ``drift``, ``missing``, ``unfinished`` or ``undeclared``."""

    key: str
    status: str
    details: list[str] = field(default_factory=list)


@dataclass
class VerifyReport:
    """Every finding for one output folder; ``drifted`` is what makes ``verify`` fail."""

    output_folder: Path
    findings: list[Finding]

    @property
    def drifted(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.status == DRIFT]

    def lines(self) -> list[str]:
        width = max([len(f.key) for f in self.findings] + [4])
        lines = [f"Output folder: {self.output_folder}"]
        for finding in self.findings:
            text = "; ".join(finding.details)
            lines.append(f"{finding.status.upper():<10} {finding.key:<{width}}  {text}".rstrip())
        counts: dict[str, int] = {}
        for finding in self.findings:
            counts[finding.status] = counts.get(finding.status, 0) + 1
        summary = ", ".join(f"{count} {status}" for status, count in counts.items())
        verdict = "drift found" if self.drifted else "no drift"
        lines.append(f"{len(self.findings)} checked: {summary or 'nothing'}. {verdict}.")
        return lines


def declared_steps(defs: dg.Definitions) -> list[DeclaredStep]:
    """The steps of ``defs`` (assets with a ``dreamer/fingerprint``), upstream first."""
    graph = defs.resolve_asset_graph()
    found: dict[dg.AssetKey, DeclaredStep] = {}
    names: dict[dg.AssetKey, str] = {}
    for key in graph.get_all_asset_keys():
        metadata = graph.get(key).metadata or {}
        if _value(metadata.get("dreamer/fingerprint")) is not None:
            names[key] = str(_value(metadata.get("dreamer/step_name")) or key.to_user_string())
    for key in graph.toposorted_asset_keys:
        if key not in names:
            continue
        node = graph.get(key)
        upstream = tuple(names[parent] for parent in sorted(node.parent_keys) if parent in names)
        found[key] = DeclaredStep(
            key="_".join(key.path),
            name=names[key],
            fingerprint=str(_value(node.metadata["dreamer/fingerprint"])),
            upstream=upstream,
            folder=str(_value(node.metadata.get("dreamer/folder")) or "_".join(key.path)),
        )
    return list(found.values())


def verify_definitions(defs: dg.Definitions, output_folder: str | Path | None = None) -> VerifyReport:
    """Check the output folder of ``defs`` (or ``output_folder``) against its steps."""
    if output_folder is None:
        resource = (defs.resources or {}).get(IO_MANAGER_KEY)
        if resource is None or not hasattr(resource, "output_folder"):
            raise ValueError(
                "These definitions have no DreamerIOManager, so their output folder is not known. "
                "Fix: pass --output-folder."
            )
        folder = OutputFolder(resource.output_folder, getattr(resource, "storage_options", None) or None)
    else:
        folder = OutputFolder(output_folder)
    files = folder.files
    steps = declared_steps(defs)
    # Folders an earlier release wrote move under their current names first (printed).
    upgrade_output_folder(folder, log=print)
    findings = [_verify_step(folder, step) for step in steps]
    declared = {step.folder.split("/")[0] for step in steps}
    for name in files.list_names(folder.root):
        child = folder.root / name
        owned = name in declared or name.startswith((".", BACKUPS))
        if owned:
            continue
        if files.exists(child / "step.json") or files.exists(child / IN_PROGRESS):
            findings.append(
                Finding(
                    name,
                    UNDECLARED,
                    ["a step folder no declared step owns (a renamed or removed step?); left as is"],
                )
            )
    return VerifyReport(folder.root, findings)


def _verify_step(folder: OutputFolder, step: DeclaredStep) -> Finding:
    step_folder = folder.step(step.folder)
    files = folder.files
    if not files.exists(step_folder.step_json_path):
        if files.exists(step_folder.path / IN_PROGRESS):
            return Finding(step.key, UNFINISHED, ["a run started and did not finish; materialize it"])
        return Finding(step.key, MISSING, ["not materialized"])
    problem = step_folder.problem()
    if problem is not None:
        return Finding(step.key, DRIFT, [f"not a finished step: {problem}"])
    record = step_folder.step_json() or {}
    details: list[str] = []
    if record.get("fingerprint") != step.fingerprint:
        details.append(
            f"fingerprint {record.get('fingerprint')} on disk, {step.fingerprint} declared "
            "(the declaration changed since it ran: materialize it)"
        )
    model = bool(record.get("model"))
    path = step_folder.model_path if model else step_folder.dataset_path
    if record.get("lazy"):  # a lazy step: a recipe, no files of its own to check
        changed = _recipe_differences(folder, record)
    else:
        with _local_copy(folder, path) as local:
            changed = differences(local, record)
    if changed:
        details.append(f"{path.name} changed after it was written ({'; '.join(changed)})")
    card = record.get("data_card") or {}
    missing = [name for name in step.upstream if name not in card]
    if missing:
        details.append(f"its data card does not list the upstream steps {missing}")
    if details:
        return Finding(step.key, DRIFT, details)
    rows = record.get("num_rows")
    summary = f"fingerprint {step.fingerprint}" + (f", {rows} rows" if rows is not None else "")
    if record.get("lazy"):
        summary += ", lazy (a recipe over its upstream, no dataset of its own)"
    return Finding(step.key, OK, [summary])


def _recipe_differences(folder: OutputFolder, record: dict) -> list[str]:
    """What a lazy step's recipe no longer matches: an upstream folder now holding another
    fingerprint, or the same fingerprint with other data (its rows would differ)."""
    problems = []
    for upstream in (record.get("lazy") or {}).get("upstream") or []:
        held = folder.step(str(upstream.get("folder"))).step_json() or {}
        if held.get("fingerprint") != upstream.get("fingerprint"):
            problems.append(
                f"its recipe reads {upstream.get('folder')!r}, which no longer holds fingerprint "
                f"{upstream.get('fingerprint')}"
            )
        elif held.get("data_version") != upstream.get("data_version"):
            problems.append(f"its recipe reads {upstream.get('folder')!r}, whose data changed since")
    return problems


@contextmanager
def _local_copy(folder: OutputFolder, path: Any) -> Iterator[Path]:
    """``path`` itself on a local disk; a fresh download of it from a remote output folder."""
    if not folder.remote:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="dreamer-verify-") as tmp:
        local = Path(tmp) / path.name
        folder.files.get_folder(path, local)
        yield local


def _value(value: Any) -> Any:
    return getattr(value, "value", value)
