"""Offline token counts for API models.

OpenAI's tokenizer tables (tiktoken) are downloaded on first use, which a
machine without internet cannot do, so API models estimate instead: text is
split the way GPT tokenizers pre-split it (words with their leading space,
numbers in runs of up to three digits, punctuation runs, whitespace) and each
piece counts one token, or one per started seven bytes when longer than ten.
On English prose this is close to cl100k/o200k counts (whose vocabularies hold
most whole words), and it errs high on long or unusual words, the safe side
for context checks. Servers' own
``usage`` figures replace the estimate wherever a response carries them.
"""

from __future__ import annotations

import re

__all__ = ["estimate_tokens"]

_PIECES = re.compile(
    r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d{1,3}| ?[^\s\w]+|\s+(?!\S)|\s+""",
    re.UNICODE,
)


def estimate_tokens(text: str) -> int:
    if not text:
        return 0
    total = 0
    for piece in _PIECES.findall(text):
        size = len(piece.encode("utf-8"))
        total += 1 if size <= 10 else -(-size // 7)
    return total
