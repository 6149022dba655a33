"""Chinese seeds through the whole loop: the Unicode tokenizer catches near-duplicates.

rouge-score's tokenizer keeps only [a-z0-9], so with it every Chinese instruction scores 0
against everything and duplicates sail through; the run must refuse to go on instead.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest

from selfinstruct_async.checkpoint.store import Store
from selfinstruct_async.config import Config, load_config
from selfinstruct_async.prompts import DEFAULT_TEMPLATES
from selfinstruct_async.run.runner import run
from selfinstruct_async.seeds import builtin_seed_path
from selfinstruct_async.similarity import EmptyTokensError, SimilarityIndex
from selfinstruct_async.simulator.responder import respond
from selfinstruct_async.simulator.server import SimulatorHandle
from tests.fixtures.simulator import MakeSimulator

pytestmark = pytest.mark.anyio

ZH_SEEDS = builtin_seed_path("zh")
TAIL = "\uff0c请尽量简洁"  # a full-width comma, then "please keep it brief"
ZH_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "zh.toml"

# New instructions the scripted model offers, two per response, in this order.
FRESH = [
    "请为一家新开的面包店设计三条宣传标语",
    "解释为什么冬天的白昼比夏天短",
    "把下面这段对话改写成正式的商务邮件",
    "列出五种适合在阳台种植的蔬菜并说明理由",
    "用一句话概括牛顿第一定律的含义",
    "判断下面这句话表达的情绪是积极还是消极",
    "给正在准备面试的大学毕业生提几条建议",
    "计算一个边长为七厘米的正方形的周长",
    "推荐三本适合初学者阅读的历史书籍",
    "将下列城市按人口从多到少排序",
    "写一首关于海边日落的四行短诗",
    "说明垃圾分类对环境保护有什么好处",
    "为周末的家庭野餐制定一份物品清单",
    "找出下面这段文字中的所有人名",
    "比较火车和飞机两种出行方式的优缺点",
    "解释什么是复利并举一个简单的例子",
]


class ChineseModel:
    """Answers generation prompts in Chinese, repeating its first demonstration with a tail."""

    def __init__(self) -> None:
        self.fresh = itertools.cycle(FRESH)

    def __call__(
        self, prompt: str, system: str, *, chat: bool, max_tokens: int, seed: int = 0
    ) -> tuple[str, str]:
        if DEFAULT_TEMPLATES.instruction_header.strip() not in prompt:
            return respond(prompt, system, chat=chat, max_tokens=max_tokens, seed=seed)
        listed = re.findall(r"^(\d+)\.\s*(\S.*)$", prompt, re.MULTILINE)
        number = int(listed[-1][0]) + 1 if listed else 1
        near_duplicate = listed[0][1] + TAIL
        items = [near_duplicate, next(self.fresh), next(self.fresh)]
        text = " " + f"\n{number + 1}. ".join(items)
        return text, "stop"


def zh_config(handle: SimulatorHandle, out: Path, **filters: Any) -> Config:
    return load_config(
        ZH_CONFIG,
        overrides={
            "run": {"out": str(out), "target": 6, "seeds": str(ZH_SEEDS)},
            "endpoint": {"base_url": handle.base_url, "model": "zh"},
            "filters": filters,
        },
    )


async def test_chinese_near_duplicates_are_rejected_with_the_unicode_tokenizer(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    handle = await make_simulator(responder=ChineseModel())
    out = tmp_path / "run"
    summary = await run(zh_config(handle, out))
    assert summary.accepted == 6
    tasks = [json.loads(line) for line in (out / "tasks.jsonl").read_text().splitlines()]
    with Store(out, read_only=True) as store:
        rejections = store.rejection_summary(examples=50)["instruction/rouge_similarity"]
    # Every response repeated a demonstration; each repeat was caught.
    assert rejections["count"] >= 1
    assert all(e["text"].endswith(TAIL) for e in rejections["examples"])
    assert not any(t["instruction"].endswith(TAIL) for t in tasks)
    index = SimilarityIndex(tokenizer="unicode")
    for task in tasks:
        assert index.first_above(task["instruction"], 0.7) is None
        index.add(task["instruction"])


async def test_rouge_tokenizer_on_chinese_stops_the_run_loudly(
    make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    handle = await make_simulator(responder=ChineseModel())
    config = load_config(
        ZH_CONFIG,
        overrides={
            "run": {"out": str(tmp_path / "run"), "target": 200, "seeds": str(ZH_SEEDS)},
            "endpoint": {"base_url": handle.base_url, "model": "zh"},
            "filters": {"rouge_similarity": {"tokenizer": "rouge"}},
        },
    )
    with pytest.raises(BaseException) as raised:
        await run(config)
    errors = [raised.value]
    while isinstance(errors[-1], BaseExceptionGroup):
        errors.append(errors[-1].exceptions[0])
    assert isinstance(errors[-1], EmptyTokensError)
    assert "unicode" in str(errors[-1])
