"""The Hugging Face Hub's HTTP API, as ``huggingface_hub`` uploads with it, on the OpenAI fake's core.

``add_hub_routes(server)`` serves on a :class:`FakeOpenAIServer` (one loopback port
for both) what ``HfApi.create_repo``, ``create_branch``, ``whoami``, ``upload_folder``
(preupload, the repo tree, the commit) and ``DatasetCard`` validation call, and
records every uploaded file. A process (a script under test) publishes to it with
``HF_ENDPOINT=<server.root_url>``, ``HF_HUB_DISABLE_XET=1`` and ``HF_TOKEN``; files
are always sent inline ("regular" upload mode), so no LFS or Xet store is needed.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

from .openai_server import FakeOpenAIServer, FakeRequest, FakeResponse

__all__ = ["FakeHub", "add_hub_routes"]

_REPO = r"/api/(?P<kind>models|datasets|spaces)/(?P<repo>[^/]+/[^/]+)"


@dataclass
class FakeHub:
    """What the fake Hub received: ``files[(kind, repo_id)][path] = bytes``, the repos
    created (with their ``private`` flag), the branches, the ``Authorization`` headers."""

    files: dict[tuple[str, str], dict[str, bytes]] = field(default_factory=dict)
    created: dict[tuple[str, str], bool] = field(default_factory=dict)
    branches: list[tuple[str, str, str]] = field(default_factory=list)
    authorizations: set[str] = field(default_factory=set)
    commits: list[tuple[str, str, str]] = field(default_factory=list)
    user: str = "someone"

    def repo_files(self, kind: str, repo_id: str) -> dict[str, bytes]:
        return self.files.get((kind, repo_id), {})


def add_hub_routes(server: FakeOpenAIServer, hub: FakeHub | None = None) -> FakeHub:
    """Serve the Hub's upload API on ``server``; returns the :class:`FakeHub` recording it."""
    hub = hub or FakeHub()

    def seen(request: FakeRequest) -> None:
        hub.authorizations.add(request.headers.get("authorization", ""))

    def whoami(request: FakeRequest) -> FakeResponse:
        seen(request)
        return FakeResponse(200, {"name": hub.user, "type": "user", "orgs": []})

    def create_repo(request: FakeRequest) -> FakeResponse:
        seen(request)
        body = request.body
        kind = (body.get("type") or "model") + "s"
        repo_id = f"{body.get('organization') or hub.user}/{body['name']}"
        # huggingface_hub 1.x sends "private", 2.x "visibility"
        hub.created[(kind, repo_id)] = bool(body.get("private")) or body.get("visibility") == "private"
        return FakeResponse(200, {"url": f"https://huggingface.co/{repo_id}", "name": repo_id})

    def preupload(request: FakeRequest) -> FakeResponse:
        seen(request)
        files = request.body["files"]
        return FakeResponse(
            200,
            {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]},
        )

    def tree(request: FakeRequest) -> FakeResponse:
        kind, repo_id = request.match.group("kind"), request.match.group("repo")
        return FakeResponse(
            200,
            [
                {"type": "file", "path": path, "size": len(data), "oid": "0" * 40}
                for path, data in hub.repo_files(kind, repo_id).items()
            ],
        )

    def commit(request: FakeRequest) -> FakeResponse:
        seen(request)
        kind, repo_id = request.match.group("kind"), request.match.group("repo")
        stored = hub.files.setdefault((kind, repo_id), {})
        raw = request.body if isinstance(request.body, bytes) else json.dumps(request.body).encode()
        for line in raw.decode().splitlines():
            item = json.loads(line)
            if item["key"] == "file":
                stored[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            elif item["key"] == "deletedFile":
                stored.pop(item["value"]["path"], None)
        hub.commits.append((kind, repo_id, request.match.group("revision")))
        oid = f"{len(hub.commits):040d}"
        return FakeResponse(
            200, {"commitUrl": f"https://huggingface.co/{repo_id}/commit/{oid}", "commitOid": oid}
        )

    def branch(request: FakeRequest) -> FakeResponse:
        seen(request)
        hub.branches.append(
            (request.match.group("kind"), request.match.group("repo"), request.match.group("branch"))
        )
        return FakeResponse(200, {})

    def validate_yaml(request: FakeRequest) -> FakeResponse:
        return FakeResponse(200, {"errors": [], "warnings": []})

    server.add_route("GET", r"/api/whoami-v2", whoami)
    server.add_route("POST", r"/api/repos/create", create_repo)
    server.add_route("POST", _REPO + r"/preupload/(?P<revision>[^/]+)", preupload)
    server.add_route("GET", _REPO + r"/tree/(?P<revision>[^/]+)(?:/.*)?", tree)
    server.add_route("POST", _REPO + r"/commit/(?P<revision>[^/]+)", commit)
    server.add_route("POST", _REPO + r"/branch/(?P<branch>[^/]+)", branch)
    server.add_route("POST", r"/api/validate-yaml", validate_yaml)
    return hub
