"""``selfinstruct dedup`` keeps the first of each near-duplicate group, in any input format."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from rouge_score import rouge_scorer

from selfinstruct_async.errors import DedupInputError
from selfinstruct_async.outputs.dedup import (
    add_parser,
    deduplicate_file,
    read_records,
)

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
INSTRUCTIONS = [
    "Write a short poem about the ocean at night.",
    "Write a short poem about the ocean at night please.",  # near-duplicate of 0
    "Give three reasons to learn a second language.",
    "Write a short poem about the sea at night.",  # near-duplicate of 0
    "Summarize the paragraph in two sentences.",
    "Give three good reasons to learn a second language.",  # near-duplicate of 2
]


def expected_kept(instructions: list[str], threshold: float = 0.7) -> list[int]:
    kept: list[int] = []
    for i, text in enumerate(instructions):
        scores = [SCORER.score(instructions[k], text)["rougeL"].fmeasure for k in kept]
        if not scores or max(scores) <= threshold:
            kept.append(i)
    return kept


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="selfinstruct")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    status: int = args.func(args)
    return status


def test_jsonl_keeps_records_unchanged_in_input_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        json.dumps({"instruction": text, "id": i, "note": "ü"}, ensure_ascii=False)
        for i, text in enumerate(INSTRUCTIONS)
    ]
    lines[4] = lines[4].replace(", ", ",  ")  # odd spacing survives untouched
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert cli(["dedup", str(src), "--out", str(out)]) == 0
    keep = expected_kept(INSTRUCTIONS)
    assert keep == [0, 2, 4]
    assert out.read_text(encoding="utf-8").splitlines() == [lines[i] for i in keep]
    printed = capsys.readouterr().out
    assert "kept 3, dropped 3" in printed and " s " in printed


def test_alpaca_json_list_is_written_back_as_a_json_list(tmp_path: Path) -> None:
    data = [{"instruction": t, "input": "", "output": str(i)} for i, t in enumerate(INSTRUCTIONS)]
    src = tmp_path / "alpaca.json"
    src.write_text(json.dumps(data, indent=1), encoding="utf-8")
    out = tmp_path / "alpaca.dedup.json"
    result = deduplicate_file(src, out)
    assert (result.format, result.kept, result.dropped) == ("json", 3, 3)
    assert json.loads(out.read_text(encoding="utf-8")) == [data[i] for i in (0, 2, 4)]


def test_plain_text_lines_and_a_stricter_threshold(tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    src.write_text("\n".join(INSTRUCTIONS[:4]) + "\n\n", encoding="utf-8")
    out = tmp_path / "out.txt"
    assert cli(["dedup", str(src), "--out", str(out), "--threshold", "0.9"]) == 0
    keep = expected_kept(INSTRUCTIONS[:4], 0.9)
    assert 1 < len(keep) < 4
    assert out.read_text(encoding="utf-8").splitlines() == [INSTRUCTIONS[i] for i in keep]


def test_unicode_tokenizer_deduplicates_chinese(tmp_path: Path) -> None:
    src = tmp_path / "zh.txt"
    src.write_text(
        "请写一首关于秋天的诗\n请写一首关于秋天的短诗\n把这句话翻译成英文\n", encoding="utf-8"
    )
    out = tmp_path / "zh.out.txt"
    assert cli(["dedup", str(src), "--out", str(out), "--tokenizer", "unicode"]) == 0
    assert out.read_text(encoding="utf-8").splitlines() == [
        "请写一首关于秋天的诗",
        "把这句话翻译成英文",
    ]


def test_rouge_tokenizer_on_chinese_fails_loudly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "zh.txt"
    src.write_text("请写一首关于秋天的诗\n" * 60, encoding="utf-8")
    out = tmp_path / "zh.out.txt"
    assert cli(["dedup", str(src), "--out", str(out)]) == 2
    assert 'tokenizer = "unicode"' in capsys.readouterr().err
    assert not out.exists()


def test_bad_json_line_is_named_and_existing_output_is_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_text(
        '{"instruction": "a"}\n{"instruction": "b"}\n{"instruction": \n', encoding="utf-8"
    )
    out = tmp_path / "out.jsonl"
    out.write_text("previous result\n", encoding="utf-8")
    assert cli(["dedup", str(src), "--out", str(out)]) == 2
    assert f"{src}:3: invalid JSON" in capsys.readouterr().err
    assert out.read_text(encoding="utf-8") == "previous result\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "out.jsonl"]


def test_missing_or_mistyped_instruction_field_names_line_and_field(tmp_path: Path) -> None:
    src = tmp_path / "x.jsonl"
    src.write_text('{"instruction": "a"}\n{"prompt": "b"}\n', encoding="utf-8")
    with pytest.raises(DedupInputError, match=r"x\.jsonl:2: field 'instruction': missing"):
        read_records(src)
    src.write_text('{"instruction": 5}\n', encoding="utf-8")
    with pytest.raises(DedupInputError, match=r":1: field 'instruction': expected a string"):
        read_records(src)
    alpaca = tmp_path / "a.json"
    alpaca.write_text('[{"instruction": "a"}, {"output": "b"}]', encoding="utf-8")
    with pytest.raises(DedupInputError, match="item 1: field 'instruction': missing"):
        read_records(alpaca)


def test_threshold_outside_zero_one_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli(["dedup", "in.jsonl", "--out", "o.jsonl", "--threshold", "7"])
    assert "between 0 and 1" in capsys.readouterr().err
