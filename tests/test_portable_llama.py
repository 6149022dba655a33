"""The installed llama.cpp runs on any x86-64 CPU with AVX2, and long prompts complete.

A native build on an Intel Xeon that advertises AMX emits ``tileloadd`` and friends, which
die with SIGILL as soon as a prompt takes the batched matrix path; AVX-512 (``zmm``
registers) dies on AMD EPYCs before Zen 4. These tests read the machine code of the
libraries the venv actually loads, and run a prompt of several hundred tokens.
"""

from __future__ import annotations

import importlib.util
import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from selfinstruct_async.client.local import LocalClient, default_model_path
from selfinstruct_async.client.protocol import CompletionRequest
from selfinstruct_async.client.usage import UsageMeter
from selfinstruct_async.config import LocalConfig

AMX = re.compile(
    r"\s(tileloadd\w*|tdp\w+ps|tdpb\w+|ldtilecfg|sttilecfg|tilerelease|tilezero|tilestored)\s"
)
AVX512 = re.compile(r"%zmm\d+|%k[1-7]\b")

needs_llama = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed"
)


def llama_libraries() -> list[Path]:
    spec = importlib.util.find_spec("llama_cpp")
    assert spec is not None and spec.origin is not None
    lib = Path(spec.origin).parent / "lib"
    return sorted(p for p in lib.glob("*.so*") if not p.is_symlink())


def disassemble(path: Path) -> str:
    return subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


@pytest.mark.slow
@needs_llama
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86-64 only")
@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) not found")
def test_installed_llama_cpp_has_no_amx_or_avx512_instructions() -> None:
    libraries = llama_libraries()
    assert any(p.name.startswith("libggml-cpu") for p in libraries), libraries
    for path in libraries:
        code = disassemble(path)
        assert "vfmadd" in code or "libggml-cpu" not in path.name  # disassembly is real
        amx = AMX.findall(code)
        assert not amx, f"{path.name} contains AMX instructions: {sorted(set(amx))[:5]}"
        avx512 = AVX512.findall(code)
        assert not avx512, f"{path.name} uses AVX-512 registers: {sorted(set(avx512))[:5]}"


def test_the_amx_pattern_recognises_amx_disassembly() -> None:
    # The check above passes on an empty match; this keeps the pattern honest.
    sample = "  4011f0:\ttileloadd (%rsi,%rdx,1),%tmm0 \n  401200:\ttdpbssd %tmm2,%tmm1,%tmm0 \n"
    assert AMX.findall(sample) == ["tileloadd", "tdpbssd"]
    assert AVX512.findall("vmovups %zmm0,(%rdi)") == ["%zmm0"]


@pytest.mark.slow
@needs_llama
@pytest.mark.anyio
async def test_a_prompt_of_several_hundred_tokens_completes() -> None:
    client = LocalClient(LocalConfig(model_path=str(default_model_path())), UsageMeter())
    sentence = "The quick brown fox jumps over the lazy dog near the quiet river bank. "
    prompt = sentence * 40 + "\nSummarize the text above in one sentence:"
    try:
        completion = await client.complete(
            CompletionRequest(stage="generation", prompt=prompt, max_tokens=16)
        )
    finally:
        await client.aclose()
    assert completion.usage.prompt_tokens >= 500
    assert completion.usage.completion_tokens >= 1
    assert completion.text.strip()
