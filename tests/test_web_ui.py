"""The Dagster web UI in a real browser: the example pipeline's generation steps (on the loopback
OpenAI-compatible server) are materialized with `dagster asset materialize`, `dagster-webserver`
serves them on 127.0.0.1, and headless Debian Chromium (driven by selenium through Debian's
chromedriver; nothing downloaded) visits the asset graph and one step's page. Screenshots go to
``test-artifacts/web_ui/`` (or ``$DREAMER_TEST_ARTIFACTS``)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.openai_server import FakeOpenAIServer
from tests.support.services import DEBIAN_FIX, EXTRAS_FIX, skip_missing_service
from tests.support.waiting import HANG_S

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(os.environ.get("DREAMER_TEST_ARTIFACTS", REPO / "test-artifacts")) / "web_ui"
#: Chromium here, as root, without a desktop or network (see scripts/install-system-packages.sh).
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1600,1800",
]

# The README's example pipeline (definitions.py) without its trainer, on the loopback server.
DEFINITIONS = textwrap.dedent(
    """
    import os

    from dreamer_dagster import Pipeline
    from dreamer_dagster.llms import OpenAI
    from dreamer_dagster.steps import DataFromPrompt, ProcessWithPrompt

    llm = OpenAI("fake-chat", base_url=os.environ["FAKE_OPENAI_BASE_URL"])

    with Pipeline({output!r}) as pipeline:
        abstracts = DataFromPrompt(
            "Generate Research Paper Abstracts",
            args={{"llm": llm, "n": 8, "temperature": 0.8, "top_p": 0.95, "max_new_tokens": 48, "seed": 7,
                   "instruction": "Generate an arXiv abstract of an NLP research paper."}},
            outputs={{"generations": "abstracts"}},
        )
        tweets = ProcessWithPrompt(
            "Generate Tweets from Abstracts",
            inputs={{"inputs": abstracts.output["abstracts"]}},
            args={{"llm": llm, "instruction": "Given the abstract, write a tweet to summarize the work."}},
            outputs={{"inputs": "abstracts", "generations": "tweets"}},
        )
        splits = tweets.splits(train_size=0.75, validation_size=0.25, name="Abstract Tweet Splits")

    defs = pipeline.definitions(schedule="0 3 * * *")
    """
)
STEPS = [
    "generate_research_paper_abstracts",
    "generate_tweets_from_abstracts",
    "abstract_tweet_splits_train",
    "abstract_tweet_splits_validation",
]


def _browser(profile: Path) -> object:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        skip_missing_service("selenium is not installed", EXTRAS_FIX)
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.exists():
            skip_missing_service(f"{path} is missing (Debian package {package})", DEBIAN_FIX)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")  # a fresh profile, outside the repository
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def webserver(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The materialized example served by dagster-webserver; yields its URL and output folder."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("nux:\n  enabled: false\ntelemetry:\n  enabled: false\n")
    output = tmp_path / "output"
    definitions = tmp_path / "definitions.py"
    definitions.write_text(DEFINITIONS.format(output=str(output)))
    with FakeOpenAIServer() as server:
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "FAKE_OPENAI_BASE_URL": server.base_url,
            "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": str(REPO),
        }
        materialized = subprocess.run(
            [str(BIN / "dagster"), "asset", "materialize", "--select", "*", "-f", str(definitions)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=HANG_S,
        )
        assert materialized.returncode == 0, materialized.stderr[-3000:]
        port = _free_port()
        log = open(tmp_path / "webserver.log", "w")  # noqa: SIM115 - closed below
        process = subprocess.Popen(
            [str(BIN / "dagster-webserver"), "-f", str(definitions), "-h", "127.0.0.1", "-p", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + HANG_S
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/server_info", timeout=5):
                        break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        log.flush()
                        raise AssertionError((tmp_path / "webserver.log").read_text()[-3000:]) from None
                    time.sleep(1)
            yield url, output
        finally:
            process.terminate()
            try:
                process.wait(timeout=HANG_S)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()


def _page_text(driver: object, needed: list[str], timeout: float = 120) -> str:
    """The page's text once every string in ``needed`` is on it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def ready(d: object) -> str | bool:
        text = d.find_element(By.TAG_NAME, "body").text
        return text if all(item in text for item in needed) else False

    try:
        return WebDriverWait(driver, timeout, poll_frequency=1).until(ready)
    except Exception:
        driver.save_screenshot(str(ARTIFACTS / "timeout.png"))
        text = driver.find_element(By.TAG_NAME, "body").text
        missing = [item for item in needed if item not in text]
        raise AssertionError(f"Not on the page after {timeout} s: {missing}\n{text[:3000]}") from None


def test_asset_graph_and_step_page_in_chromium(webserver, tmp_path):
    from selenium.webdriver.common.by import By

    url, output = webserver
    record = json.loads((output / "generate-tweets-from-abstracts" / "step.json").read_text())
    fingerprint = record["fingerprint"]
    driver = _browser(tmp_path / "chromium-profile")
    try:
        driver.get(f"{url}/asset-groups")
        _page_text(driver, STEPS)
        driver.save_screenshot(str(ARTIFACTS / "asset_graph.png"))

        driver.get(f"{url}/assets/generate_tweets_from_abstracts")
        text = _page_text(
            driver,
            ["Row count", "Description", "Data Card", "Model Name: fake-chat", "Storage", "Source code"],
        )
        assert "Generate Tweets from Abstracts — ProcessWithPrompt" in text
        assert "Row count\n8" in text
        assert "## " not in text and "Generate Research Paper Abstracts" in text  # the card, rendered
        assert f"file://{output / 'generate-tweets-from-abstracts'}" in text
        assert "OpenAI" in text and "dreamer/sample" in text and "dreamer/model_calls" in text
        driver.save_screenshot(str(ARTIFACTS / "step_page.png"))

        details = driver.find_element(By.XPATH, "//*[text()='Compute details']")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", details)
        details.click()
        text = _page_text(driver, ["Code version", fingerprint])
        assert f"Code version\n{fingerprint}" in text
        assert "Pool\nopenai_127_0_0_1_" in text
        driver.save_screenshot(str(ARTIFACTS / "step_page_compute_details.png"))

        driver.get(f"{url}/assets/generate_tweets_from_abstracts?view=checks")
        text = _page_text(driver, ["duplicate_generations", "empty_generations", "row_count"])
        # The loopback server answers a repeated prompt with the same seed alike (the seed
        # reaches the API as given, as in DataDreamer), so duplicate_generations fails here
        # and the page shows it beside the two checks that pass.
        assert "empty_generations\nSucceeded" in text and "row_count\nSucceeded" in text
        assert "duplicate_generations" in text and "Failed" in text
        driver.save_screenshot(str(ARTIFACTS / "step_checks.png"))
    finally:
        driver.quit()
    for name in ("asset_graph", "step_page", "step_page_compute_details", "step_checks"):
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 10_000


# A daily-partitioned prompt step (steps/partitions.py), two of its days materialized.
PARTITIONED_DEFINITIONS = textwrap.dedent(
    """
    import os

    import dagster as dg
    from dreamer_dagster import Pipeline
    from dreamer_dagster.llms import OpenAI
    from dreamer_dagster.steps import DataFromPrompt

    with Pipeline({output!r}) as pipeline:
        DataFromPrompt(
            "Daily News",
            args={{"llm": OpenAI("fake-chat", base_url=os.environ["FAKE_OPENAI_BASE_URL"]), "n": 2,
                   "instruction": "Write a headline for {{partition_key}}."}},
            partitions_def=dg.DailyPartitionsDefinition(start_date="2026-11-29", end_date="2026-12-03"),
        )

    defs = pipeline.definitions()
    """
)


def test_partition_view_of_a_partitioned_step_in_chromium(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("nux:\n  enabled: false\ntelemetry:\n  enabled: false\n")
    output = tmp_path / "output"
    definitions = tmp_path / "definitions.py"
    definitions.write_text(PARTITIONED_DEFINITIONS.format(output=str(output)))
    days = ["2026-12-01", "2026-12-02"]
    driver = _browser(tmp_path / "chromium-profile")  # skips first when Chromium is missing
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    process = log = None
    try:
        with FakeOpenAIServer() as server:
            env = {**os.environ, "DAGSTER_HOME": str(home), "FAKE_OPENAI_BASE_URL": server.base_url}
            env.update(HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
            for day in days:
                done = subprocess.run(
                    [str(BIN / "dagster"), "asset", "materialize", "--select", "daily_news", "--partition", day,
                     "-f", str(definitions)],
                    cwd=tmp_path, env=env, capture_output=True, text=True, timeout=HANG_S,
                )  # fmt: skip
                assert done.returncode == 0, done.stderr[-3000:]
            port = _free_port()
            log = open(tmp_path / "webserver.log", "w")  # noqa: SIM115 - closed below
            process = subprocess.Popen(
                [str(BIN / "dagster-webserver"), "-f", str(definitions), "-h", "127.0.0.1", "-p", str(port)],
                cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + HANG_S
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/server_info", timeout=5):
                        break
                except OSError:
                    log_text = (tmp_path / "webserver.log").read_text()[-3000:]
                    assert process.poll() is None and time.monotonic() < deadline, log_text
                    time.sleep(1)
            driver.get(f"{url}/assets/daily_news?view=partitions")
            text = _page_text(driver, ["4 Partitions Selected", "Materialized (2)", "Missing (2)", *days])
            driver.save_screenshot(str(ARTIFACTS / "partitions_view.png"))
            driver.get(f"{url}/assets/daily_news?view=partitions&partition={days[1]}")
            text = _page_text(driver, ["Latest materialization", f"_partitions/{days[1]}"])
            assert "dreamer/reused" in text, text[:3000]
            driver.save_screenshot(str(ARTIFACTS / "partition_page.png"))
    finally:
        driver.quit()
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=HANG_S)
            except subprocess.TimeoutExpired:
                process.kill()
        if log is not None:
            log.close()
    for day in days:
        assert (output / "daily-news" / "_partitions" / day / "step.json").is_file()


def test_pipeline_components_in_chromium(tmp_path):
    """Two scaffolded ``DreamerPipelineComponent`` folders in a ``create-dagster`` project: the
    web UI shows both pipelines' assets, each under its key prefix, group and IO manager."""
    from dreamer_dagster.components.scaffolder import defs_yaml_text, pipeline_module_text

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("nux:\n  enabled: false\ntelemetry:\n  enabled: false\n")
    project = tmp_path / "demo"
    env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_DG_UPDATE_CHECK_ENABLED": "0"}
    env.update(
        HF_HUB_OFFLINE="1", PYTHONPATH=str(project / "src"), TWEETS_OUTPUT=str(tmp_path / "tweets-out")
    )
    driver = _browser(tmp_path / "chromium-profile")  # skips first when Chromium is missing
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    process = log = None
    try:
        created = subprocess.run(
            [str(BIN / "create-dagster"), "project", "--no-uv-sync", str(project)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=HANG_S,
        )  # fmt: skip
        assert created.returncode == 0, created.stderr[-3000:]
        for name in ("tweets", "news"):  # what `dg scaffold defs` writes (tests/test_component.py runs it)
            folder = project / "src" / "demo" / "defs" / name
            folder.mkdir()
            (folder / "defs.yaml").write_text(
                defs_yaml_text("dreamer_dagster.DreamerPipelineComponent", name)
            )
            (folder / "pipeline.py").write_text(pipeline_module_text(name))
        target = ["-m", "demo.definitions"]
        done = subprocess.run(
            [str(BIN / "dagster"), "asset", "materialize", "--select", "tweets/abstracts", *target],
            cwd=project, env=env, capture_output=True, text=True, timeout=HANG_S,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        port = _free_port()
        log = open(tmp_path / "webserver.log", "w")  # noqa: SIM115 - closed below
        process = subprocess.Popen(
            [str(BIN / "dagster-webserver"), *target, "-h", "127.0.0.1", "-p", str(port)],
            cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + HANG_S
        while True:
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=5):
                    break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, (
                    tmp_path / "webserver.log"
                ).read_text()[-3000:]
                time.sleep(1)
        driver.get(f"{url}/assets?view=flat")
        _page_text(driver, ["tweets / abstracts", "tweets / tweets_from_abstracts", "news / abstracts"])
        driver.save_screenshot(str(ARTIFACTS / "components_catalog.png"))
        driver.get(f"{url}/assets/tweets/abstracts")
        text = _page_text(driver, ["Abstracts — DataSource", "Row count", "tweets"])
        assert "Row count\n2" in text
        assert str(tmp_path / "tweets-out" / "abstracts") in text  # the templated output folder
        driver.save_screenshot(str(ARTIFACTS / "component_step_page.png"))
    finally:
        driver.quit()
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=HANG_S)
            except subprocess.TimeoutExpired:
                process.kill()
        if log is not None:
            log.close()
    assert (tmp_path / "tweets-out" / "abstracts" / "step.json").is_file()
