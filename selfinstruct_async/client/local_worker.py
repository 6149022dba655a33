"""The process that holds the embedded llama.cpp model, so a crash in it cannot kill a run.

llama.cpp is native code: an illegal instruction, an out-of-memory kill or a corrupt GGUF
ends whatever process it runs in. :class:`~selfinstruct_async.client.local.LocalClient`
runs it here instead and turns this process's death into an error naming the model file.

Protocol: one JSON object per line. The parent writes ``{"op": "load", ...}`` once, then
``{"op": "complete", "id": N, ...}`` or ``{"op": "score", "id": N, ...}`` requests one at a
time; every line read gets exactly one line back, ``{"ok": true}`` / ``{"id": N, "result":
{...}}`` or ``{"error": "...", "kind": "load" | "prompt" | "internal"}``. End of input ends
the process.

``complete`` takes two options llama-cpp-python's own calls cannot serve as this process
loads the model: ``logprobs`` (llama-cpp-python needs ``logits_all``, a logits row per
context position: 800 MB at 4,096 tokens for SmolLM2's vocabulary) is answered for the
first generated position from the last prompt position's logits; ``grammar`` (GBNF text)
becomes a compiled ``LlamaGrammar``, kept per text. ``score`` returns, for each of several
texts, the summed log probability of its tokens after a shared prefix, evaluating the
prefix once (llama.cpp keeps its KV cache when the next tokens extend what it holds).

Run as ``python -m selfinstruct_async.client.local_worker``; nothing else should import it.
"""

from __future__ import annotations

import json
import os
import sys
from typing import IO, Any


def _protocol_stdout() -> IO[str]:
    """Keep fd 1 for the protocol alone: native code writing to stdout would corrupt it."""
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(protocol_fd, "w", encoding="utf-8", buffering=1)


def _load(message: dict[str, Any]) -> Any:
    from llama_cpp import Llama

    return Llama(
        model_path=message["model_path"],
        n_ctx=message["n_ctx"],
        n_threads=message["n_threads"],
        seed=message["seed"],
        verbose=False,
    )


_GRAMMARS: dict[str, Any] = {}


def _grammar(text: str) -> Any:
    """The compiled grammar for GBNF ``text``; compiled once per text (it costs milliseconds)."""
    if text not in _GRAMMARS:
        from llama_cpp.llama_grammar import LlamaGrammar

        _GRAMMARS[text] = LlamaGrammar.from_string(text, verbose=False)
    return _GRAMMARS[text]


def _complete(model: Any, message: dict[str, Any]) -> dict[str, Any]:
    options = dict(message["options"])
    top = int(options.pop("logprobs", 0) or 0)
    grammar = options.pop("grammar", None)
    if grammar:
        options["grammar"] = _grammar(grammar)
    first: dict[str, float] | None = None
    if message["api"] != "chat":
        _reuse_shared_prefix(model, message["prompt"])
    if top > 0 and message["api"] != "chat":
        # Before generating: the prompt's KV cache it leaves is what generation reuses.
        first = _next_token_logprobs(model, message["prompt"], top)
    if message["api"] == "chat":
        result: dict[str, Any] = model.create_chat_completion(
            messages=message["messages"], **options
        )
    else:
        result = model.create_completion(prompt=message["prompt"], **options)
    if first is not None and result.get("choices"):
        result["choices"][0]["logprobs"] = {"top_logprobs": [first]}
    return result


def _reuse_shared_prefix(model: Any, prompt: str) -> None:
    """Restore the KV cache of the part of ``prompt`` before its last ``Task:`` line.

    Classification and instance prompts of a kind share everything before the task they
    ask about, but the stages take turns on this one model, so each prompt would find
    another stage's tokens in the cache and evaluate all of its own again.
    """
    cut = prompt.rfind("\nTask:")
    if cut <= 0:
        return
    head = _tokens(model, prompt[: cut + 1], bos=True)
    whole = _tokens(model, prompt, bos=True)
    if whole[: len(head)] == head and len(head) < len(whole):
        _restore(model, head)


def _evaluate(model: Any, tokens: list[int], keep_at_most: int) -> Any:
    """Logits (one row per evaluated position) for ``tokens``; positions already in the KV
    cache are reused, at most ``keep_at_most`` of them, so rows start at or before it."""
    import numpy as np

    held = model.n_tokens
    cached = 0
    limit = min(held, len(tokens) - 1, keep_at_most)
    while cached < limit and int(model.input_ids[cached]) == tokens[cached]:
        cached += 1
    rest = tokens[cached:]
    n_vocab = model.n_vocab()
    rows = []
    model._ctx.kv_cache_seq_rm(-1, cached, -1)
    model.n_tokens = cached
    for start in range(0, len(rest), model.n_batch):
        batch = rest[start : start + model.n_batch]
        # Every position's logits, not only the last one's: the score needs each token's.
        model._batch.set_batch(batch=batch, n_past=model.n_tokens, logits_all=True)
        model._ctx.decode(model._batch)
        logits = np.ctypeslib.as_array(model._ctx.get_logits(), shape=(len(batch) * n_vocab,))
        rows.append(logits.reshape(len(batch), n_vocab).copy())
        model.input_ids[model.n_tokens : model.n_tokens + len(batch)] = batch
        model.n_tokens += len(batch)
    return cached, np.concatenate(rows)


def _log_softmax(rows: Any) -> Any:
    import numpy as np

    top = rows.max(axis=-1, keepdims=True)
    return rows - top - np.log(np.exp(rows - top).sum(axis=-1, keepdims=True))


def _tokens(model: Any, text: str, *, bos: bool) -> list[int]:
    return list(model.tokenize(text.encode("utf-8"), add_bos=bos, special=False))


def _next_token_logprobs(model: Any, prompt: str, top: int) -> dict[str, float]:
    """The ``top`` most likely next tokens after ``prompt`` and their log probabilities."""
    import numpy as np

    tokens = _tokens(model, prompt, bos=True)
    _, rows = _evaluate(model, tokens, len(tokens) - 1)
    logprobs = _log_softmax(rows[-1])
    best = np.argsort(-logprobs)[:top]
    return {model.detokenize([int(i)]).decode("utf-8", "replace"): float(logprobs[i]) for i in best}


# KV cache snapshots of recent shared prefixes, by token ids: the stages and the two
# likelihood lists take turns, and each switch would evaluate hundreds of tokens again.
_PREFIX_STATES: dict[tuple[int, ...], bytes] = {}
_MAX_PREFIX_STATES = 8


def _held(model: Any, tokens: list[int]) -> bool:
    n = len(tokens)
    return model.n_tokens >= n and [int(t) for t in model.input_ids[:n]] == tokens


def _restore_prefix(model: Any, prefix: list[int]) -> None:
    """Put the KV cache of ``prefix`` minus its last token in place, from a snapshot if any."""
    _restore(model, prefix[:-1])


def _restore(model: Any, head: list[int]) -> None:
    """Make the KV cache hold exactly ``head``: kept, restored from a snapshot, or evaluated
    (and then snapshotted)."""
    import ctypes

    import llama_cpp

    if not head or _held(model, head):
        return
    ctx = model._ctx.ctx
    saved = _PREFIX_STATES.get(tuple(head))
    model._ctx.kv_cache_seq_rm(-1, 0, -1)
    model.n_tokens = 0
    if saved is not None:
        buffer = (ctypes.c_uint8 * len(saved)).from_buffer_copy(saved)
        if llama_cpp.llama_state_seq_set_data(ctx, buffer, len(saved), 0) == len(saved):
            model.input_ids[: len(head)] = head
            model.n_tokens = len(head)
            return
        model._ctx.kv_cache_seq_rm(-1, 0, -1)  # not restored: evaluate it instead
    model.eval(head)
    size = llama_cpp.llama_state_seq_get_size(ctx, 0)
    buffer = (ctypes.c_uint8 * size)()
    written = llama_cpp.llama_state_seq_get_data(ctx, buffer, size, 0)
    if len(_PREFIX_STATES) >= _MAX_PREFIX_STATES:
        _PREFIX_STATES.pop(next(iter(_PREFIX_STATES)))
    _PREFIX_STATES[tuple(head)] = bytes(buffer)[:written]


def _score(model: Any, message: dict[str, Any]) -> dict[str, Any]:
    """Per text: the summed log probability of its tokens after ``prefix``, and their count."""
    prefix = _tokens(model, message["prefix"], bos=True)
    _restore_prefix(model, prefix)
    scores = []
    for text in message["texts"]:
        tokens = prefix + _tokens(model, text, bos=False)
        # The row predicting the text's first token is the prefix's last position.
        cached, rows = _evaluate(model, tokens, len(prefix) - 1)
        logprobs = _log_softmax(rows)
        total = sum(
            float(logprobs[j - 1 - cached, tokens[j]]) for j in range(len(prefix), len(tokens))
        )
        scores.append({"logprob": total, "tokens": len(tokens) - len(prefix)})
    return {"scores": scores}


def serve(lines: IO[str], out: IO[str]) -> None:
    """Answer requests from ``lines`` until it ends."""
    model: Any = None
    for line in lines:
        message = json.loads(line)
        reply: dict[str, Any]
        if message["op"] == "load":
            try:
                model = _load(message)
                reply = {"ok": True}
            except (ValueError, OSError) as error:  # llama-cpp-python's "failed to load"
                reply = {"error": str(error), "kind": "load"}
        else:
            reply = {"id": message["id"]}
            try:
                if message["op"] == "score":
                    reply["result"] = _score(model, message)
                else:
                    reply["result"] = _complete(model, message)
            except ValueError as error:  # "exceeds context window" and kin
                reply.update(error=str(error), kind="prompt")
            except Exception as error:  # reported, not fatal: the parent decides
                reply.update(error=f"{type(error).__name__}: {error}", kind="internal")
        out.write(json.dumps(reply) + "\n")
    if model is not None and hasattr(model, "close"):
        model.close()


def main() -> None:
    out = _protocol_stdout()
    serve(sys.stdin, out)


if __name__ == "__main__":
    main()
