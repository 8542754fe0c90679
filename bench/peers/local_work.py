"""Local generation, measured one way for every side: ``bench/local_generation.py`` and
the local scenario of ``bench/peers.py`` both call :func:`measure_local`.

The work: SmolLM2-135M-Instruct on the CPU (the folder :func:`side_envs.peer_model_folder`
writes), greedy, ``prompts`` chat prompts in batches of ``batch_size``. Every side gets
the same prompts in the same order: chat-formatted with the folder's own template and
sorted by token count within groups of four batches (the order ``HFTransformers`` uses,
so a batch pads little), done here once per round and handed to each runner. Every side
runs in a fresh process and a fresh work folder (a cold model cache), times only its own
run call (``seconds``), and writes its generations for the comparison. Rounds use new
prompts; the order of the sides turns each round, so neither always runs first on a
warm or a busy machine. Used from this project's venv; the runners run in each side's.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from peer_task import make_prompts  # noqa: E402
from side_envs import HOME, build_side_env, peer_model_folder, venv_python  # noqa: E402

__all__ = ["LOCAL_SIDES", "LocalSide", "measure_local", "sorted_prompts"]

#: Side -> (runner, venv or None for this project's, extra config).
LOCAL_SIDES = {
    "generate": ("run_floor.py", None, {"client": "generate"}),
    "ours": ("run_ours.py", None, {}),
    "datadreamer": ("run_datadreamer.py", "datadreamer", {}),
    "distilabel": ("run_distilabel.py", "distilabel", {}),
}


@dataclass
class LocalSide:
    """One side's rounds: the seconds of each run call, and its generations per round."""

    seconds: list[float] = field(default_factory=list)
    generations: list[list[str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def spread(self) -> str:
        return f"{min(self.seconds):.2f}-{max(self.seconds):.2f} s" if self.seconds else "-"


def sorted_prompts(model_dir: Path, prompts: list[str], batch_size: int) -> list[str]:
    """``prompts`` sorted by the token count of their chat-formatted text, within groups
    of four batches (stable: equal counts keep their order)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    group = 4 * batch_size
    ordered: list[str] = []
    for start in range(0, len(prompts), group):
        chunk = prompts[start : start + group]
        counts = [
            len(
                tokenizer.apply_chat_template(
                    [{"role": "user", "content": prompt}], tokenize=True, add_generation_prompt=True
                )
            )
            for prompt in chunk
        ]
        ordered += [prompt for _, _, prompt in sorted(zip(counts, range(len(chunk)), chunk))]
    return ordered


def _run_side(side: str, config: dict, timeout: float) -> tuple[float | None, list[str], str | None]:
    runner, venv, extra = LOCAL_SIDES[side]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("PYTHONPATH", None)
    work = Path(config["work_dir"])
    log = work / "runner.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(venv_python(venv)), str(HERE / runner), json.dumps({**config, **extra})],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=work,
            start_new_session=True,
        )
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return None, [], f"no result after {timeout:.0f} s; see {log}"
    result = {}
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT ") :])
    generations_file = work / "generations.json"
    if "seconds" not in result or not generations_file.is_file():
        return None, [], f"exit {process.returncode}; see {log}"
    return result["seconds"], json.loads(generations_file.read_text()), None


def measure_local(
    sides: list[str],
    rounds: int,
    prompts: int,
    batch_size: int,
    max_new_tokens: int,
    timeout: float = 1200.0,
    say=print,
) -> dict[str, LocalSide]:
    """Run every side ``rounds`` times, interleaved; each side's seconds and generations."""
    model_dir = peer_model_folder()
    for side in sides:
        venv = LOCAL_SIDES[side][1]
        if venv is not None:
            build_side_env(venv)
    results = {side: LocalSide() for side in sides}
    for round_ in range(rounds):
        tag = f"r{round_}-{time.time_ns()}"  # new prompts each round: nothing is cached anywhere
        base = {"task": "local", "prompts": prompts, "tag": tag}
        ordered = sorted_prompts(model_dir, make_prompts(base), batch_size)
        turn = round_ % len(sides)
        for side in sides[turn:] + sides[:turn]:
            work = HOME / "runs" / "local-bench" / side
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            config = {
                **base,
                "prompt_list": ordered,
                "concurrency": batch_size,
                "max_new_tokens": max_new_tokens,
                "model_dir": str(model_dir),
                "work_dir": str(work),
                "save_generations": True,
            }
            seconds, generations, error = _run_side(side, config, timeout)
            if error is not None:
                results[side].errors.append(error)
                say(f"round {round_ + 1}: {side}: {error}")
                continue
            results[side].seconds.append(seconds)
            results[side].generations.append(generations)
            say(f"round {round_ + 1}: {side}: {seconds:.2f} s ({prompts / seconds:.2f} prompts/s)")
    return results
