"""Benchmarks against DataDreamer, distilabel and Curator, in one run (``make bench-peers``).

Each peer is installed in its own venv under ``.bench-peers/`` (built here from
the package registries on first use, CPU torch 2.13.0 wherever torch is
needed) and runs the same work in its own process, through a small runner in
``bench/peers/run_<peer>.py``, against one loopback OpenAI-compatible server
(tests/support/openai_server.py, here in this process):

- API generation: ``--prompts`` chat prompts (2,000), ``--concurrency`` in
  flight (50), at a fixed latency (50 ms) and at that latency plus a seeded
  exponential tail (mean 100 ms; each prompt's delay is drawn from the seed and
  the prompt, so every client meets the same delays);
- a fully cached re-run: the same command again on the fixed-latency folder;
- a kill at 50 %: the runner's process group gets SIGKILL once the server has
  received half the prompts, then the same command runs to the end; the
  prompts sent in both runs together show what a crash costs;
- local generation: SmolLM2-135M-Instruct on the CPU, ``--local-prompts``
  (64) in batches of 32, greedy, where the peer has a local backend (Curator's
  is vLLM, which needs a GPU), measured as ``bench/local_generation.py`` measures
  it (``bench/peers/local_work.py``: the same length-sorted prompts for every side,
  cold caches, sides interleaved over at least 3 rounds, each side's median).

Floors in the same run: a bare ``AsyncOpenAI`` + semaphore loop, bare
``httpx`` (the SDK's HTTP client) and bare ``aiohttp`` (the transport of this
project's request path, and Curator's) for the API work, bare batched
``model.generate`` for local generation. Rates are rows per second of each
client's own run call (imports and process start excluded; ``wall`` in the
JSON includes them); ``cpu`` is the CPU seconds the client's processes used,
which other work on the machine disturbs less than wall time. The results go to
``.bench-peers/results.json``. Exits non-zero when this project runs below
``TARGET`` x Curator at either latency shape.

    python bench/peers.py [--rounds 1] [--only ours,curator] [--scenarios fixed,tail,cached,kill,local] [--build-only]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "bench" / "peers"))

from local_work import LOCAL_SIDES, measure_local  # noqa: E402
from peer_server import PeerServer  # noqa: E402
from side_envs import HOME, build_side_env, venv_python  # noqa: E402

TARGET = 1.05  # this project's rows/s over Curator's, at both latency shapes
RUNNERS = ROOT / "bench" / "peers"
#: Client -> (runner, venv or None for this project's, extra config, has a local backend).
CLIENTS = {
    "ours": ("run_ours.py", None, {}, True),
    "curator": ("run_curator.py", "curator", {}, False),
    "datadreamer": ("run_datadreamer.py", "datadreamer", {}, True),
    "distilabel": ("run_distilabel.py", "distilabel", {}, True),
    "asyncopenai": ("run_floor.py", None, {"client": "openai"}, False),
    "httpx": ("run_floor.py", None, {"client": "httpx"}, False),
    "aiohttp": ("run_floor.py", None, {"client": "aiohttp"}, False),
    "generate": ("run_floor.py", None, {"client": "generate"}, True),
}
LABELS = {
    "ours": "dreamer_dagster",
    "curator": "Curator 0.1.31",
    "datadreamer": "DataDreamer 0.46.0",
    "distilabel": "distilabel 1.5.3",
    "asyncopenai": "bare AsyncOpenAI",
    "httpx": "bare httpx",
    "aiohttp": "bare aiohttp",
    "generate": "bare generate",
}
PEERS = ("ours", "curator", "datadreamer", "distilabel")
API_FLOORS = ("asyncopenai", "httpx", "aiohttp")


# -- running one client -------------------------------------------------------------------


def run_client(
    client: str,
    config: dict,
    server: PeerServer,
    log_name: str,
    timeout: float,
    kill_at: int | None = None,
) -> dict:
    """Run ``client`` on ``config`` in its own process; its result line plus prompts sent, wall and CPU."""
    runner, venv, extra, _ = CLIENTS[client]
    config = {**config, **extra}
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("PYTHONPATH", None)
    log = HOME / "logs" / f"{log_name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    sent_before = server.prompts_sent
    cpu_before = _children_cpu()
    started = time.perf_counter()
    with log.open("w") as out:
        # Output goes to the log, never to a pipe: a chatty peer must not block on a full pipe.
        process = subprocess.Popen(
            [str(venv_python(venv)), str(RUNNERS / runner), json.dumps(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=config["work_dir"],
            start_new_session=True,  # one process group: a kill takes the peer's workers too
        )
        killed = timed_out = False
        try:
            if kill_at is not None:
                deadline = time.monotonic() + timeout
                while process.poll() is None and server.prompts_sent - sent_before < kill_at:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.002)
                if process.poll() is None and server.prompts_sent - sent_before >= kill_at:
                    os.killpg(process.pid, signal.SIGKILL)
                    killed = True
            try:
                process.wait(timeout=max(1.0, timeout - (time.perf_counter() - started)))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                timed_out = True
        finally:
            _reap_group(process.pid)  # also when this driver is interrupted
    result: dict = {"killed": killed}
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("RESULT "):
            result.update(json.loads(line[len("RESULT ") :]))
    if timed_out:
        result["error"] = f"no result after {timeout:.0f} s (stopped); see {log}"
    elif not killed and "rows" not in result:
        result["error"] = f"exit {process.returncode}; see {log}"
    result["prompts_sent"] = server.prompts_sent - sent_before
    result["wall"] = time.perf_counter() - started
    result["cpu"] = _children_cpu() - cpu_before
    if "seconds" in result:
        result["rows_per_s"] = result["rows"] / result["seconds"]
    return result


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _reap_group(pgid: int) -> None:
    """Kill what is left of a runner's process group (a peer's workers outliving it)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


# -- scenarios ----------------------------------------------------------------------------


def fresh(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def api_config(args: argparse.Namespace, base_url: str, tag: str, work_dir: Path) -> dict:
    return {
        "task": "api",
        "prompts": args.prompts,
        "tag": tag,
        "concurrency": args.concurrency,
        "max_new_tokens": args.max_new_tokens,
        "base_url": base_url,
        "work_dir": str(work_dir),
    }


def say(scenario: str, client: str, result: dict) -> None:
    if "error" in result:
        print(f"  {scenario:<12} {LABELS[client]:<20} FAILED: {result['error']}", flush=True)
        return
    rate = f"{result['rows_per_s']:8.1f} rows/s" if "rows_per_s" in result else "   killed     "
    print(
        f"  {scenario:<12} {LABELS[client]:<20} {rate}  prompts sent {result['prompts_sent']:5d}  "
        f"correct {result.get('correct', '-')}  cpu {result['cpu']:5.1f} s  wall {result['wall']:5.1f} s",
        flush=True,
    )


def run_api(args: argparse.Namespace, server: PeerServer, clients: list[str]) -> dict:
    results: dict = {"fixed": {}, "tail": {}, "cached": {}, "kill": {}, "kill_rerun": {}}
    runs = HOME / "runs"
    walls: dict[str, float] = {}  # client -> the wall time of its first fixed-latency run
    for shape in [s for s in ("fixed", "tail") if s in args.scenarios]:
        server.tail_mean = args.tail_mean if shape == "tail" else 0.0
        for round_ in range(args.rounds):
            # Rounds alternate the order, so no client always runs first (or last).
            order = clients if round_ % 2 == 0 else list(reversed(clients))
            for client in order:
                work = fresh(runs / f"{shape}-{round_}" / client)
                config = api_config(args, server.base_url, f"{shape}-{round_}", work)
                result = run_client(client, config, server, f"{shape}-{round_}-{client}", args.run_timeout)
                say(f"{shape} #{round_}", client, result)
                if shape == "fixed" and "error" not in result:
                    walls.setdefault(client, result["wall"])
                best = results[shape].get(client)
                if best is None or result.get("rows_per_s", 0) > best.get("rows_per_s", 0):
                    results[shape][client] = result
    server.tail_mean = 0.0
    for client in clients if "cached" in args.scenarios else []:
        if client in API_FLOORS:
            continue  # a bare loop stores nothing to re-run from
        work = runs / "fixed-0" / client
        config = api_config(args, server.base_url, "fixed-0", work)
        result = run_client(client, config, server, f"cached-{client}", args.run_timeout)
        say("cached", client, result)
        results["cached"][client] = result
    for client in clients if "kill" in args.scenarios else []:
        if client in API_FLOORS:
            continue
        work = fresh(runs / "kill" / client)
        config = api_config(args, server.base_url, "kill", work)
        first = run_client(
            client, config, server, f"kill-{client}", args.run_timeout, kill_at=args.prompts // 2
        )
        say("killed", client, first)
        # A re-run that takes far longer than a whole run did is stuck (distilabel's, seen here).
        budget = min(args.run_timeout, 60 + 3 * walls[client]) if client in walls else args.run_timeout
        second = run_client(client, config, server, f"kill-rerun-{client}", budget)
        say("re-run", client, second)
        results["kill"][client] = first
        results["kill_rerun"][client] = second
    return results


def run_local(args: argparse.Namespace, server: PeerServer, clients: list[str]) -> dict:
    """The local scenario, measured as ``bench/local_generation.py`` measures it
    (``bench/peers/local_work.py``): same prompts and order, cold caches, sides interleaved
    over ``--rounds``; each side's median rate and spread."""
    sides = [c for c in clients if CLIENTS[c][3] and c in LOCAL_SIDES] + ["generate"]
    found = measure_local(
        sides,
        max(args.rounds, 3),
        args.local_prompts,
        args.local_batch_size,
        args.local_max_new_tokens,
        timeout=2 * args.run_timeout,
        say=lambda line: print(f"local: {line}", flush=True),
    )
    results: dict = {}
    for side, side_found in found.items():
        if not side_found.seconds:
            results[side] = {"error": "; ".join(side_found.errors)}
            continue
        results[side] = {
            "rows": args.local_prompts,
            "seconds": side_found.median,
            "rows_per_s": args.local_prompts / side_found.median,
            "spread": side_found.spread(),
            "rounds": len(side_found.seconds),
        }
    return results


# -- the report -----------------------------------------------------------------------------


def table(results: dict, clients: list[str]) -> str:
    columns = list(clients) + (["generate"] if "local" in results else [])

    def cell(scenario: str, client: str, key: str = "rows_per_s", fmt: str = "{:.0f}") -> str:
        result = results.get(scenario, {}).get(client)
        if result is None:
            return "n/a"
        if "error" in result:
            return "failed"
        value = result.get(key)
        return "-" if value is None else fmt.format(value)

    def kill_cell(client: str) -> str:
        first = results.get("kill", {}).get(client)
        second = results.get("kill_rerun", {}).get(client)
        if first is None or second is None:
            return "n/a"
        if "error" in second:
            return f"{first['prompts_sent']} + " + ("hung" if "no result" in second["error"] else "failed")
        missing = "" if second.get("correct") == second.get("rows") else f" ({second.get('correct')} right)"
        return f"{first['prompts_sent']} + {second['prompts_sent']}{missing}"

    rows = [
        ("API, 50 ms, rows/s", [cell("fixed", c) for c in columns]),
        ("API, 50 ms + tail, rows/s", [cell("tail", c) for c in columns]),
        ("cached re-run, rows/s", [cell("cached", c) for c in columns]),
        ("cached re-run, prompts sent", [cell("cached", c, "prompts_sent", "{}") for c in columns]),
        ("kill at 50 %, prompts sent", [kill_cell(c) for c in columns]),
        ("local SmolLM2, rows/s", [cell("local", c, fmt="{:.2f}") for c in columns]),
    ]
    header = "| | " + " | ".join(LABELS[c] for c in columns) + " |"
    lines = [header, "|" + "---|" * (len(columns) + 1)]
    lines += [f"| {name} | " + " | ".join(values) + " |" for name, values in rows]
    return "\n".join(lines)


def ratios(results: dict) -> tuple[list[str], bool]:
    lines, ok = [], True

    def rate(scenario: str, client: str) -> float | None:
        return results.get(scenario, {}).get(client, {}).get("rows_per_s")

    for shape, name in (("fixed", "fixed 50 ms"), ("tail", "50 ms + tail")):
        ours, curator = rate(shape, "ours"), rate(shape, "curator")
        if ours is None or curator is None:
            lines.append(f"{name}: this project / Curator: not measured")
            ok = False
            continue
        ratio = ours / curator
        verdict = "OK" if ratio >= TARGET else "BELOW TARGET"
        lines.append(f"{name}: this project / Curator = {ratio:.3f} (target >= {TARGET}) {verdict}")
        ok = ok and ratio >= TARGET
        for floor in API_FLOORS:
            if rate(shape, floor):
                lines.append(f"{name}: this project / {LABELS[floor]} = {ours / rate(shape, floor):.3f}")
        for peer in ("datadreamer", "distilabel"):
            if rate(shape, peer):
                lines.append(f"{name}: this project / {LABELS[peer]} = {ours / rate(shape, peer):.3f}")
    for floor in ("generate", "datadreamer", "distilabel"):
        if rate("local", "ours") and rate("local", floor):
            lines.append(
                f"local (medians): this project / {LABELS[floor]} = "
                f"{rate('local', 'ours') / rate('local', floor):.3f}"
            )
    return lines, ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--tail-mean", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=1, help="API runs per client and shape (best kept)")
    parser.add_argument("--local-prompts", type=int, default=64)
    parser.add_argument("--local-batch-size", type=int, default=32)
    parser.add_argument("--local-max-new-tokens", type=int, default=32)
    parser.add_argument("--only", default=",".join(PEERS + API_FLOORS), help="comma-separated clients")
    parser.add_argument(
        "--scenarios", default="fixed,tail,cached,kill,local", help="comma-separated; cached needs fixed"
    )
    parser.add_argument("--run-timeout", type=float, default=300, help="seconds before a run is stopped")
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    clients = [c.strip() for c in args.only.split(",") if c.strip()]
    args.scenarios = {s.strip() for s in args.scenarios.split(",") if s.strip()}
    if "cached" in args.scenarios and "fixed" not in args.scenarios:
        raise SystemExit("--scenarios: cached re-runs the fixed-latency folders; add fixed.")
    unknown = [c for c in clients if c not in CLIENTS or c == "generate"]
    if unknown:
        raise SystemExit(f"unknown clients {unknown}; pick from {', '.join(PEERS + API_FLOORS)}")
    HOME.mkdir(exist_ok=True)
    # SIGTERM (a timeout, a CI stop) unwinds like Ctrl-C, so no runner outlives the driver.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    for client in clients:
        if CLIENTS[client][1] is not None:
            build_side_env(CLIENTS[client][1], rebuild=args.rebuild)
    if args.build_only:
        return
    results: dict = {}
    with PeerServer(latency=args.latency) as server:
        server.seed = args.seed
        print(
            f"API: {args.prompts} prompts, {args.concurrency} in flight, {args.latency * 1000:.0f} ms "
            f"(+ exponential tail of mean {args.tail_mean * 1000:.0f} ms, seed {args.seed}); "
            f"{os.cpu_count()} CPUs",
            flush=True,
        )
        results.update(run_api(args, server, clients))
        if "local" in args.scenarios:
            print(
                f"local: SmolLM2-135M-Instruct, {args.local_prompts} prompts, batch {args.local_batch_size}, "
                f"{args.local_max_new_tokens} new tokens, greedy",
                flush=True,
            )
            results["local"] = run_local(args, server, clients)
    settings = {**vars(args), "scenarios": sorted(args.scenarios)}
    (HOME / "results.json").write_text(json.dumps({"args": settings, "results": results}, indent=2))
    print()
    print(table(results, clients))
    print()
    lines, ok = ratios(results)
    print("\n".join(lines))
    failed = [
        f"{scenario}/{client}"
        for scenario, by_client in results.items()
        for client, result in by_client.items()
        if "error" in result
    ]
    if failed:
        print(f"runs without a result: {', '.join(failed)} (logs in {HOME / 'logs'})")
    # A peer that fails or hangs is a finding about the peer; only this project's runs
    # (and the measurements the target needs) decide the exit status.
    ours_failed = [name for name in failed if name.endswith("/ours")] + [
        f"{scenario}/ours (wrong rows)"
        for scenario, by_client in results.items()
        if "rows" in by_client.get("ours", {}) and by_client["ours"]["correct"] != by_client["ours"]["rows"]
    ]
    if ours_failed:
        print(f"this project failed: {', '.join(ours_failed)}")
    sys.exit(0 if ok and not ours_failed else 1)


if __name__ == "__main__":
    main()
