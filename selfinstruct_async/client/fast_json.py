"""``json.loads`` for answers, by orjson when it is installed and reads the body the same.

Every answer is decoded once, and for the usual few hundred bytes orjson (the ``fast``
extra: ``pip install selfinstruct-async[fast]``) takes a fifth of the time. Without it, or
where the two could differ, ``json.loads`` decodes: the result is always what
``json.loads`` gives, and so is every error.

Where they differ: orjson reads an integer beyond 64 bits as a float (``json.loads`` keeps
it an int), so a body with a run of 19 digits goes to ``json.loads``; and orjson refuses
what ``json.loads`` accepts (``NaN``, ``Infinity``, a byte-order mark, UTF-16, lone
surrogates, very deep nesting), so its refusals go to ``json.loads`` too, which reads them
or raises its own error.
"""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

orjson: ModuleType | None
try:
    import orjson  # type: ignore[import-not-found, unused-ignore]
except ImportError:  # the fast extra is optional
    orjson = None

__all__ = ["loads"]

# Digits to "0", all else to " ": a run of 19 digits is then a plain substring search
# (a fraction of what a regular expression costs over an answer).
_DIGITS = bytes(0x30 if 0x30 <= i <= 0x39 else 0x20 for i in range(256))
_LONG_RUN = b"0" * 19


def loads(body: bytes) -> Any:
    """``json.loads(body)``: the same value, or the same exception."""
    fast = orjson
    if fast is not None and _LONG_RUN not in body.translate(_DIGITS):
        try:
            return fast.loads(body)
        except fast.JSONDecodeError:
            pass  # json.loads reads it (NaN, a BOM...) or raises its own error
    return json.loads(body)
