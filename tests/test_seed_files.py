"""Checks that the shipped seed task files meet the paper's seed rules and the pipeline's filters.

The English file is the default pool every run starts from, so it has to pass the same
filters the generated tasks must pass; otherwise the seeds themselves would be rejected
or would block generated instructions for the wrong reasons.
"""

from __future__ import annotations

import itertools
import json
import re
import string
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from rouge_score import rouge_scorer
from rouge_score.rouge_scorer import _score_lcs

SEEDS_DIR = Path(__file__).resolve().parent.parent / "seeds" / "selfinstruct_seeds"
ENGLISH = SEEDS_DIR / "seed_tasks.jsonl"
CHINESE = SEEDS_DIR / "zh" / "seed_tasks.jsonl"
PAPER_SEEDS = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "self_instruct_seed_tasks.jsonl"
)

TASK_KEYS = {"id", "name", "instruction", "instances", "is_classification"}
INSTANCE_KEYS = {"input", "output"}
SIMILARITY_LIMIT = 0.7
BLACKLIST = (
    "image",
    "images",
    "graph",
    "graphs",
    "picture",
    "pictures",
    "file",
    "files",
    "map",
    "maps",
    "draw",
    "plot",
    "go to",
    "video",
    "audio",
    "music",
    "flowchart",
    "diagram",
)
BLACKLIST_RE = re.compile(
    r"\b(?:" + "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in BLACKLIST) + r")\b",
    re.IGNORECASE,
)
HAN_RE = re.compile(r"[\u4e00-\u9fff]")


def _read(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _english() -> list[dict[str, Any]]:
    return _read(ENGLISH)


def _chinese() -> list[dict[str, Any]]:
    return _read(CHINESE)


def _paper() -> list[dict[str, Any]]:
    if not PAPER_SEEDS.is_file():
        pytest.skip(f"paper seed tasks not available at {PAPER_SEEDS}")
    return _read(PAPER_SEEDS)


def _schema_problems(task: Any) -> list[str]:
    if not isinstance(task, dict):
        return [f"not an object: {task!r}"]
    problems = []
    if set(task) != TASK_KEYS:
        problems.append(f"keys {sorted(task)}")
        return problems
    for key in ("id", "name", "instruction"):
        if not isinstance(task[key], str) or not task[key].strip():
            problems.append(f"{key} is not a non-empty string")
    if not isinstance(task["is_classification"], bool):
        problems.append("is_classification is not a bool")
    instances = task["instances"]
    if not isinstance(instances, list) or len(instances) != 1:
        problems.append("instances is not a list of exactly one instance")
        return problems
    instance = instances[0]
    if not isinstance(instance, dict):
        problems.append(f"instance is not an object: {instance!r}")
    elif set(instance) != INSTANCE_KEYS:
        problems.append(f"instance keys {sorted(instance)}")
    elif not all(isinstance(instance[k], str) for k in INSTANCE_KEYS):
        problems.append("instance input/output are not strings")
    return problems


def _instance_problem(instance: dict[str, str]) -> str | None:
    output = instance["output"].strip()
    if not output:
        return "empty output"
    if output.endswith((":", "\uff1a")):
        return "output ends with a colon"
    if instance["input"].strip() == output:
        return "input equals output"
    return None


def _max_pairwise(scores: list[tuple[float, str, str]]) -> tuple[float, str, str]:
    return max(scores, default=(0.0, "", ""))


def _rouge_tokens(texts: list[str]) -> list[list[str]]:
    # Tokenising once and scoring token lists keeps ~15k pairs to a couple of seconds;
    # it is exactly what RougeScorer.score does per pair.
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    return [scorer._tokenizer.tokenize(t) for t in texts]


def _han_chars(text: str) -> list[str]:
    return [
        c for c in text if not c.isspace() and not unicodedata.category(c).startswith(("P", "Z"))
    ]


def _char_rouge_l(a: list[str], b: list[str]) -> float:
    if not a or not b:
        return 0.0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    lcs = previous[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(a), lcs / len(b)
    return 2 * precision * recall / (precision + recall)


# ------------------------------------------------------------------ English seed file


def test_english_seed_file_holds_175_tasks_numbered_in_order() -> None:
    tasks = _english()
    assert len(tasks) == 175
    assert [t["id"] for t in tasks] == [f"seed_task_{i}" for i in range(175)]


def test_every_english_task_follows_the_paper_schema_with_one_instance() -> None:
    bad = {t.get("id", n): p for n, t in enumerate(_english()) if (p := _schema_problems(t))}
    assert not bad


def test_english_ids_and_names_are_unique_snake_case() -> None:
    tasks = _english()
    assert len({t["id"] for t in tasks}) == len(tasks)
    assert len({t["name"] for t in tasks}) == len(tasks)
    assert [t["name"] for t in tasks if not re.fullmatch(r"[a-z][a-z0-9_]*", t["name"])] == []


def test_english_classification_tasks_are_about_fifteen_percent() -> None:
    tasks = _english()
    share = sum(t["is_classification"] for t in tasks) / len(tasks)
    assert 0.13 <= share <= 0.17


def test_english_tasks_with_empty_input_are_about_thirty_percent() -> None:
    tasks = _english()
    share = sum(t["instances"][0]["input"] == "" for t in tasks) / len(tasks)
    assert 0.25 <= share <= 0.33


def test_english_classification_output_is_a_label_named_in_the_instruction() -> None:
    bad = [
        (t["id"], t["instances"][0]["output"])
        for t in _english()
        if t["is_classification"]
        and t["instances"][0]["output"].strip().lower() not in t["instruction"].lower()
    ]
    assert bad == []


def test_english_text_is_ascii_only() -> None:
    bad = [
        (t["id"], field)
        for t in _english()
        for field, text in (
            ("instruction", t["instruction"]),
            ("input", t["instances"][0]["input"]),
            ("output", t["instances"][0]["output"]),
        )
        if not text.isascii()
    ]
    assert bad == []


def test_english_instructions_have_between_4_and_150_words() -> None:
    counts = {t["id"]: len(t["instruction"].split()) for t in _english()}
    assert {i: n for i, n in counts.items() if not 4 <= n <= 150} == {}


def test_english_tasks_contain_no_blacklisted_words() -> None:
    hits = [
        (t["id"], m.group(0))
        for t in _english()
        for text in (t["instruction"], t["instances"][0]["input"], t["instances"][0]["output"])
        if (m := BLACKLIST_RE.search(text))
    ]
    assert hits == []


def test_blacklist_pattern_matches_whole_words_only() -> None:
    # Guards the check above: a pattern that matched nothing would make it vacuous.
    assert BLACKLIST_RE.search("Plot the numbers")
    assert BLACKLIST_RE.search("please go  to the store")
    assert not BLACKLIST_RE.search("a plotter and a profile of mapping")


def test_english_instructions_start_with_a_letter_and_not_write_a_program() -> None:
    bad = [
        t["id"]
        for t in _english()
        if not t["instruction"][:1].isalpha()
        or t["instruction"][:1] in string.punctuation
        or t["instruction"].lower().startswith("write a program")
    ]
    assert bad == []


def test_english_instances_pass_the_instance_filters() -> None:
    bad = {t["id"]: p for t in _english() if (p := _instance_problem(t["instances"][0]))}
    assert bad == {}


def test_no_two_english_instructions_reach_rouge_l_0_7() -> None:
    tasks = _english()
    tokens = _rouge_tokens([t["instruction"] for t in tasks])
    worst = _max_pairwise(
        [
            (_score_lcs(tokens[i], tokens[j]).fmeasure, tasks[i]["id"], tasks[j]["id"])
            for i, j in itertools.combinations(range(len(tasks)), 2)
        ]
    )
    assert worst[0] < SIMILARITY_LIMIT, worst


def test_english_seed_file_is_loaded_by_the_package_as_the_default_pool() -> None:
    from selfinstruct_async.seeds import DEFAULT_SEEDS, load_seed_tasks

    assert DEFAULT_SEEDS.resolve() == ENGLISH.resolve()
    loaded = load_seed_tasks(DEFAULT_SEEDS)
    assert [s.instruction for s in loaded] == [t["instruction"].strip() for t in _english()]


# ------------------------------------------------------------------ originality vs the paper


def test_no_instruction_or_line_of_the_paper_seed_file_appears_in_ours() -> None:
    paper = _paper()
    ours_text = ENGLISH.read_text(encoding="utf-8")
    ours_instructions = {" ".join(t["instruction"].lower().split()) for t in _english()}
    copied = [
        p["id"]
        for p in paper
        if " ".join(p["instruction"].lower().split()) in ours_instructions
        or json.dumps(p, ensure_ascii=False) in ours_text
        or json.dumps(p) in ours_text
    ]
    assert copied == []


def test_no_english_instruction_reaches_rouge_l_0_7_against_the_paper_seeds() -> None:
    paper = _paper()
    ours = _english()
    ours_tokens = _rouge_tokens([t["instruction"] for t in ours])
    paper_tokens = _rouge_tokens([p["instruction"] for p in paper])
    worst = _max_pairwise(
        [
            (_score_lcs(a, b).fmeasure, ours[i]["id"], paper[j]["id"])
            for i, a in enumerate(ours_tokens)
            for j, b in enumerate(paper_tokens)
        ]
    )
    assert worst[0] < SIMILARITY_LIMIT, worst


# ------------------------------------------------------------------ Chinese seed file


def test_chinese_seed_file_holds_at_least_60_tasks_numbered_in_order() -> None:
    tasks = _chinese()
    assert len(tasks) >= 60
    assert [t["id"] for t in tasks] == [f"zh_seed_task_{i}" for i in range(len(tasks))]


def test_every_chinese_task_follows_the_paper_schema_with_one_instance() -> None:
    bad = {t.get("id", n): p for n, t in enumerate(_chinese()) if (p := _schema_problems(t))}
    assert not bad


def test_chinese_ids_and_names_are_unique() -> None:
    tasks = _chinese()
    assert len({t["id"] for t in tasks}) == len(tasks)
    assert len({t["name"] for t in tasks}) == len(tasks)


def test_every_chinese_instruction_contains_chinese_characters() -> None:
    assert [t["id"] for t in _chinese() if not HAN_RE.search(t["instruction"])] == []


def test_chinese_mix_of_classification_and_empty_input_matches_the_english_one() -> None:
    tasks = _chinese()
    classification = sum(t["is_classification"] for t in tasks) / len(tasks)
    empty = sum(t["instances"][0]["input"] == "" for t in tasks) / len(tasks)
    assert 0.12 <= classification <= 0.20
    assert 0.25 <= empty <= 0.35


def test_chinese_classification_output_is_a_label_named_in_the_instruction() -> None:
    bad = [
        (t["id"], t["instances"][0]["output"])
        for t in _chinese()
        if t["is_classification"] and t["instances"][0]["output"].strip() not in t["instruction"]
    ]
    assert bad == []


def test_chinese_instances_pass_the_instance_filters() -> None:
    bad = {t["id"]: p for t in _chinese() if (p := _instance_problem(t["instances"][0]))}
    assert bad == {}


def test_character_rouge_l_ignores_punctuation_and_scores_overlap() -> None:
    # Guards the pairwise check below against a scorer that always returns 0.
    same = _han_chars("把句子改写成被动句。")
    assert _char_rouge_l(same, _han_chars("把句子\uff0c改写成 被动句")) == 1.0
    assert 0.0 < _char_rouge_l(same, _han_chars("把句子改写成反问句")) < 1.0


def test_no_two_chinese_instructions_reach_character_rouge_l_0_7() -> None:
    tasks = _chinese()
    chars = [_han_chars(t["instruction"]) for t in tasks]
    worst = _max_pairwise(
        [
            (_char_rouge_l(chars[i], chars[j]), tasks[i]["id"], tasks[j]["id"])
            for i, j in itertools.combinations(range(len(tasks)), 2)
        ]
    )
    assert worst[0] < SIMILARITY_LIMIT, worst
