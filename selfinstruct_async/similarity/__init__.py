"""Exact, fast ROUGE-L similarity: tokenizers, the incremental index and rouge-score's F.

:class:`SimilaritySettings` is the one validation of the filter's settings (the plugin's
``[filters.rouge_similarity]`` and ``dedup``'s flags). ``EmptyTokensError`` lives in
:mod:`selfinstruct_async.errors` with every other error and is re-exported here, where the
documentation (``docs/similarity.md``) has always shown it.

See ``docs/similarity.md`` for how the index stays exact while skipping most pairs.
"""

from __future__ import annotations

from .bounds import f_from_lcs, rouge_l_f
from .empty_tokens import EmptyTokensError, EmptyTokensMonitor, EmptyTokensWarning
from .index import IndexStats, SimilarityIndex, SimilarityMetadata
from .settings import ON_EMPTY_CHOICES, OnEmpty, SimilaritySettings
from .tokenizers import (
    RougeTokenizer,
    Tokenizer,
    UnicodeTokenizer,
    get_tokenizer,
    tokenizer_names,
)

__all__ = [
    "ON_EMPTY_CHOICES",
    "EmptyTokensError",
    "EmptyTokensMonitor",
    "EmptyTokensWarning",
    "IndexStats",
    "OnEmpty",
    "RougeTokenizer",
    "SimilarityIndex",
    "SimilarityMetadata",
    "SimilaritySettings",
    "Tokenizer",
    "UnicodeTokenizer",
    "f_from_lcs",
    "get_tokenizer",
    "rouge_l_f",
    "tokenizer_names",
]
