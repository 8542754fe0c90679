"""The floors, in this project's venv: the least work a client can do for the same rows.

``client="openai"``: a bare ``AsyncOpenAI`` with a semaphore of ``concurrency``
(the SDK's parsed path, nothing stored). ``client="httpx"``: the HTTP client
under the SDK (``httpx2`` here, ``httpx`` where the SDK uses that) posting the
same JSON with a connection pool of ``concurrency``, ``json.loads`` of each
body. ``client="aiohttp"``: the same with aiohttp (the transport of this
project's lean request path, and Curator's). ``client="generate"`` (local): bare batched ``model.generate`` on the
SmolLM2 folder, batches of ``concurrency``, greedy.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from peer_task import MODEL_NAME, SYSTEM_PROMPT, Timer, load_config, make_prompts, report  # noqa: E402


def body_for(prompt: str, max_new_tokens: int) -> dict:
    return {
        "model": MODEL_NAME,
        "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}],
        "max_tokens": max_new_tokens,
    }


async def with_openai(config: dict, prompts: list[str]) -> list[str]:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key="bench", base_url=config["base_url"], max_retries=0)
    semaphore = asyncio.Semaphore(config["concurrency"])

    async def one(prompt: str) -> str:
        async with semaphore:
            response = await client.chat.completions.create(**body_for(prompt, config["max_new_tokens"]))
            return response.choices[0].message.content

    try:
        return await asyncio.gather(*(one(p) for p in prompts))
    finally:
        await client.close()


def http_module():
    """The HTTP client the installed OpenAI SDK is built on."""
    for name in ("httpx2", "httpx"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError("neither httpx2 nor httpx is installed")


async def with_httpx(config: dict, prompts: list[str]) -> list[str]:
    http = http_module()
    limits = http.Limits(
        max_connections=config["concurrency"], max_keepalive_connections=config["concurrency"]
    )
    url = config["base_url"].rstrip("/") + "/chat/completions"
    headers = {"Authorization": "Bearer bench"}
    semaphore = asyncio.Semaphore(config["concurrency"])
    async with http.AsyncClient(limits=limits, timeout=120) as client:

        async def one(prompt: str) -> str:
            async with semaphore:
                response = await client.post(
                    url, json=body_for(prompt, config["max_new_tokens"]), headers=headers
                )
                response.raise_for_status()
                return json.loads(response.content)["choices"][0]["message"]["content"]

        return await asyncio.gather(*(one(p) for p in prompts))


async def with_aiohttp(config: dict, prompts: list[str]) -> list[str]:
    import aiohttp

    url = config["base_url"].rstrip("/") + "/chat/completions"
    headers = {"Authorization": "Bearer bench", "Content-Type": "application/json"}
    semaphore = asyncio.Semaphore(config["concurrency"])
    connector = aiohttp.TCPConnector(limit=config["concurrency"])
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(prompt: str) -> str:
            async with semaphore:
                body = json.dumps(body_for(prompt, config["max_new_tokens"])).encode()
                async with session.post(url, data=body, headers=headers) as response:
                    response.raise_for_status()
                    return json.loads(await response.read())["choices"][0]["message"]["content"]

        return await asyncio.gather(*(one(p) for p in prompts))


def with_generate(config: dict, prompts: list[str]) -> list[str]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(config["model_dir"])
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(config["model_dir"], dtype=torch.float32).eval()
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )
        for p in prompts
    ]
    batch = config["concurrency"]
    generations: list[str] = []
    for start in range(0, len(texts), batch):
        encoded = tokenizer(
            texts[start : start + batch], return_tensors="pt", padding=True, add_special_tokens=False
        )
        with torch.inference_mode():
            output = model.generate(
                **encoded,
                max_new_tokens=config["max_new_tokens"],
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        generations += tokenizer.batch_decode(
            output[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True
        )
    return generations


def main() -> None:
    config = load_config()
    prompts = make_prompts(config)
    client = config["client"]
    if client == "openai":
        import openai  # noqa: F401  (imported outside the timing, as the peers' imports are)
    if client == "generate":
        import torch  # noqa: F401  (likewise: every local side imports torch before its timer)
        import transformers  # noqa: F401
    with Timer() as timer:
        if client == "openai":
            generations = asyncio.run(with_openai(config, prompts))
        elif client == "httpx":
            generations = asyncio.run(with_httpx(config, prompts))
        elif client == "aiohttp":
            generations = asyncio.run(with_aiohttp(config, prompts))
        elif client == "generate":
            generations = with_generate(config, prompts)
        else:
            raise SystemExit(f"unknown floor client {client!r}")
    report(config, prompts, generations, timer.seconds)


if __name__ == "__main__":
    main()
