"""Amazon Bedrock (its OpenAI-compatible Chat Completions endpoint, with a Bedrock API key)."""

from __future__ import annotations

import os
from typing import Any

from .openai_compatible import OpenAICompatible

__all__ = ["Bedrock"]


class Bedrock(OpenAICompatible):
    """A model on `Amazon Bedrock <https://aws.amazon.com/bedrock/>`_ through its OpenAI-compatible
    endpoint ``https://bedrock-runtime.<region>.amazonaws.com/openai/v1``, key (a
    Bedrock API key) from ``AWS_BEARER_TOKEN_BEDROCK``; the region is
    ``aws_region_name``, else ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, else
    ``us-east-1``. ``Bedrock(model_name, aws_access_key_id,
    aws_secret_access_key, aws_region_name, retry_on_fail, cache_folder_path,
    **kwargs)`` as in DataDreamer; IAM access keys (which need request signing)
    are refused at declaration with the fix. Writes generations to the model cache.
    """

    PROVIDER = "Bedrock"
    API_KEY_ENV = "AWS_BEARER_TOKEN_BEDROCK"
    DEFAULT_BASE_URL = "https://bedrock-runtime.{region}.amazonaws.com/openai/v1"
    MODEL_CARD = "https://aws.amazon.com/bedrock/"
    LICENSE = "https://aws.amazon.com/terms/"

    def __init__(
        self,
        model_name: str,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_region_name: str | None = None,
        retry_on_fail: bool = True,
        cache_folder_path: str | None = None,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        **kwargs: Any,
    ):
        if aws_access_key_id is not None or aws_secret_access_key is not None:
            raise ValueError(
                "Bedrock: aws_access_key_id / aws_secret_access_key are IAM keys, which need SigV4 "
                "request signing; this class uses Bedrock's OpenAI-compatible endpoint, which takes a "
                "Bedrock API key. Fix: create a Bedrock API key and set AWS_BEARER_TOKEN_BEDROCK where "
                "the pipeline runs (or pass api_key=...)."
            )
        region = (
            aws_region_name
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or "us-east-1"
        )
        self.aws_region_name = region
        super().__init__(
            model_name,
            api_key,
            retry_on_fail,
            cache_folder_path,
            base_url=base_url or self.DEFAULT_BASE_URL.format(region=region),
            **kwargs,
        )
