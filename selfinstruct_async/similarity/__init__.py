"""Exact, fast ROUGE-L similarity: tokenizers, the incremental index and rouge-score's F.

See ``docs/similarity.md`` for how the index stays exact while skipping most pairs.
"""

from __future__ import annotations

from .bounds import f_from_lcs, rouge_l_f
from .empty_tokens import EmptyTokensError, EmptyTokensMonitor, EmptyTokensWarning
from .index import IndexStats, SimilarityIndex, SimilarityMetadata
from .tokenizers import (
    RougeTokenizer,
    Tokenizer,
    UnicodeTokenizer,
    get_tokenizer,
    tokenizer_names,
)

__all__ = [
    "EmptyTokensError",
    "EmptyTokensMonitor",
    "EmptyTokensWarning",
    "IndexStats",
    "RougeTokenizer",
    "SimilarityIndex",
    "SimilarityMetadata",
    "Tokenizer",
    "UnicodeTokenizer",
    "f_from_lcs",
    "get_tokenizer",
    "rouge_l_f",
    "tokenizer_names",
]
