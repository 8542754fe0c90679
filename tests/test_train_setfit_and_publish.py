"""TrainSetFitClassifier on the offline MiniLM through real Dagster, and what every trainer has
after training: ``trainer.model``, ``export_to_disk`` and ``publish_to_hf_hub`` (the Hub's HTTP
API answered by a recording transport: every byte that would be uploaded is checked)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml

from dreamer_dagster.steps import DataSource
from dreamer_dagster.steps.export import NotMaterializedError
from dreamer_dagster.trainers import TrainSetFitClassifier
from tests.support.foundation import materialization_metadata, materialize, step_json

pytestmark = pytest.mark.slow

REVIEWS = {
    "text": [
        "I love this movie",
        "I hate this movie",
        "What a great film",
        "What a terrible film",
        "Wonderful and fun",
        "Boring and awful",
        "Best show ever",
        "Worst show ever",
    ],
    "sentiment": ["positive", "negative"] * 4,
}
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import dagster as dg

    root = tmp_path_factory.mktemp("setfit")
    output = root / "output"
    reviews = DataSource("Reviews", REVIEWS)
    held_out = DataSource(
        "Held Out", {"text": ["I love this film", "I hate this film"], "label": ["positive", "negative"]}
    )
    trainer = TrainSetFitClassifier("Sentiment SetFit", MINILM)
    trainer.pipeline_output_folder = str(output)
    before = trainer.train(
        train_input=reviews.output["text"],
        train_output=reviews.output["sentiment"],
        validation_input=held_out.output["text"],
        validation_output=held_out.output["label"],
        epochs=(1, 25),
        batch_size=8,
        head_learning_rate=1e-2,
        max_steps=12,
    )
    with pytest.raises(
        NotMaterializedError, match="Sentiment SetFit.*is not trained.*dagster asset materialize"
    ):
        before.model  # noqa: B018
    (root / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(root / "home")) as instance:
        result = materialize([trainer], instance, output)
    return trainer, output, result


def test_setfit_trains_on_minilm_and_its_model_predicts(trained):
    trainer, output, result = trained
    model_dir = output / trainer.folder / "_model"
    assert {"config_setfit.json", "model_head.pkl", "label2id.json", "README.md", "dreamer_trainer.json"} <= {
        p.name for p in model_dir.iterdir()
    }
    assert json.loads((model_dir / "label2id.json").read_text()) == {"negative": 0, "positive": 1}
    from setfit import SetFitModel

    predictions = list(
        SetFitModel.from_pretrained(str(model_dir)).predict(["I love it, wonderful", "Awful, I hate it"])
    )
    assert predictions == ["positive", "negative"]
    assert list(trainer.model.predict(["Best film, great fun"])) == ["positive"]  # trainer.model loads it
    assert trainer.model is trainer.model
    trainer.unload_model()
    assert "_loaded_model" not in trainer.__dict__
    metadata = materialization_metadata(result, trainer)
    assert metadata["dreamer/eval_accuracy"] == 1.0
    record = step_json(output, trainer)
    assert record["type"] == "TrainSetFitClassifier" and record["args"]["training_kwargs"] == {
        "max_steps": 12
    }


def test_export_to_disk_writes_a_loadable_copy(trained, tmp_path):
    trainer, output, _ = trained
    exported = trainer.export_to_disk(tmp_path / "exported", output_folder=output)
    from setfit import SetFitModel

    assert isinstance(exported, SetFitModel)  # DataDreamer returns the exported model
    assert list(exported.predict(["Worst, boring"])) == ["negative"]
    path = tmp_path / "exported"
    assert list(SetFitModel.from_pretrained(str(path)).predict(["Worst, boring"])) == ["negative"]
    with pytest.raises(ValueError, match="trained no adapter"):
        trainer.export_to_disk(tmp_path / "adapter", adapter_only=True, output_folder=output)


class RecordingHub:
    """The Hub's HTTP API as ``huggingface_hub`` calls it, answered in-process; records uploads."""

    def __init__(self):
        self.calls: list[tuple[str, str]] = []
        self.files: dict[str, bytes] = {}
        self.authorization: set[str] = set()

    def __call__(self, request):
        import httpx2

        path = request.url.path
        self.calls.append((request.method, path))
        self.authorization.add(request.headers.get("authorization", ""))
        if path == "/api/whoami-v2":
            return httpx2.Response(200, json={"name": "someone", "type": "user", "orgs": []})
        if path == "/api/repos/create":
            return httpx2.Response(200, json={"url": "https://huggingface.co/someone/sentiment"})
        if "/preupload/" in path:
            files = json.loads(request.content)["files"]
            return httpx2.Response(
                200,
                json={
                    "files": [
                        {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files
                    ]
                },
            )
        if "/commit/" in path:
            for line in request.content.decode().splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    self.files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            return httpx2.Response(
                200,
                json={
                    "commitUrl": "https://huggingface.co/someone/sentiment/commit/" + "1" * 40,
                    "commitOid": "1" * 40,
                },
            )
        if path == "/api/validate-yaml":
            self.validated_yaml = json.loads(request.content)["content"]
            return httpx2.Response(200, json={"errors": [], "warnings": []})
        if "/branch/" in path:
            return httpx2.Response(200, json={})
        return httpx2.Response(404, json={"error": f"unexpected {request.method} {path}"})


def test_publish_to_hf_hub_uploads_the_model_and_its_card(trained, tmp_path, monkeypatch, caplog):
    import httpx2
    import huggingface_hub

    trainer, output, _ = trained
    hub = RecordingHub()
    huggingface_hub.set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(hub)))
    monkeypatch.setenv("HF_TOKEN", "hf_secret_publish_token")
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    try:
        url = trainer.publish_to_hf_hub("sentiment", branch="v1", private=True, output_folder=output)
    finally:
        huggingface_hub.set_client_factory(huggingface_hub.utils._http.default_client_factory)
    assert url == "https://huggingface.co/someone/sentiment"
    assert "Bearer hf_secret_publish_token" in hub.authorization
    assert ("POST", "/api/repos/create") in hub.calls
    assert any("/commit/v1" in path for _, path in hub.calls)
    saved = trainer.save_hf_hub_files(
        tmp_path / "would_upload", repo_id="someone/sentiment", output_folder=output
    )
    expected = {str(p.relative_to(saved)) for p in saved.rglob("*") if p.is_file()}
    assert set(hub.files) == expected
    assert {
        "model_head.pkl",
        "config_setfit.json",
        "model.safetensors",
        "README.md",
        "data_card.json",
    } <= expected
    for name, content in hub.files.items():
        assert content == (saved / name).read_bytes(), name
    card = hub.files["README.md"].decode()
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["base_model"] == MINILM
    assert front["library_name"] == "setfit" and front["pipeline_tag"] == "text-classification"
    assert "synthetic" in front["tags"] and "TrainSetFitClassifier" in front["tags"]
    assert "# Model Card for sentiment" in card and "## Training" in card and "Data Card" in card
    assert "hf_secret_publish_token" not in caplog.text
    for path in Path(output).rglob("*"):
        assert not path.is_file() or b"hf_secret_publish_token" not in path.read_bytes()
