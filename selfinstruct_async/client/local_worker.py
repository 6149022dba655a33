"""The process that holds the embedded llama.cpp model, so a crash in it cannot kill a run.

llama.cpp is native code: an illegal instruction, an out-of-memory kill or a corrupt GGUF
ends whatever process it runs in. :class:`~selfinstruct_async.client.local.LocalClient`
runs it here instead and turns this process's death into an error naming the model file.

Protocol: one JSON object per line. The parent writes ``{"op": "load", ...}`` once, then
``{"op": "complete", "id": N, ...}`` requests one at a time; every line read gets exactly
one line back, ``{"ok": true}`` / ``{"id": N, "result": {...}}`` or ``{"error": "...",
"kind": "load" | "prompt" | "internal"}``. End of input ends the process.

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


def _complete(model: Any, message: dict[str, Any]) -> dict[str, Any]:
    options = message["options"]
    if message["api"] == "chat":
        result: dict[str, Any] = model.create_chat_completion(
            messages=message["messages"], **options
        )
    else:
        result = model.create_completion(prompt=message["prompt"], **options)
    return result


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
