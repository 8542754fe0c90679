"""Uploading a folder to a Hugging Face Hub repo: what ``publish_to_hf_hub`` of a step
(a dataset repo) and of a trainer (a model repo) share.

The token is the one given or ``HF_TOKEN``, read when called and never logged; a
repo name without a namespace is put under the token's user; the repo (and the
branch) is created when missing, then the folder is uploaded in one commit.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["hub_repo", "upload_to_hub"]


def hub_repo(token: str | None, repo_id: str) -> tuple[Any, str]:
    """``(HfApi, full repo id)``: ``repo_id`` under the token's user when it has no namespace."""
    from huggingface_hub import HfApi

    api = HfApi(token=token or os.environ.get("HF_TOKEN"))
    if "/" not in repo_id:
        repo_id = f"{api.whoami()['name']}/{repo_id}"
    return api, repo_id


def upload_to_hub(
    api: Any,
    folder: str | os.PathLike,
    repo_id: str,
    repo_type: str,
    *,
    private: bool,
    branch: str | None,
    default_commit_message: str,
    **kwargs: Any,
) -> None:
    """Create the repo (and ``branch``) when missing and upload ``folder`` to it; ``kwargs``
    go to ``HfApi.upload_folder`` (a ``commit_message`` there wins over the default)."""
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    if branch is not None:
        api.create_branch(repo_id, branch=branch, repo_type=repo_type, exist_ok=True)
    kwargs.setdefault("commit_message", default_commit_message)
    api.upload_folder(
        folder_path=str(folder), repo_id=repo_id, repo_type=repo_type, revision=branch, **kwargs
    )
