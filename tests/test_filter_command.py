"""``selfinstruct filter``: the instruction filter chain over a file, one verdict per line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from selfinstruct_async.cli import main as cli
from selfinstruct_async.filter_file import read_instructions

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds" / "selfinstruct_seeds" / "seed_tasks.jsonl"
# An instruction of the default seeds, and one a word away from it.
SEED = "Tell a complete story in exactly six words about a lost umbrella."
NEAR_SEED = "Tell a complete story in exactly six words about a lost wallet."
POEM = "Write a short poem about the sea at night and the lights of boats."
NEAR_POEM = "Write a short poem about the sea at night and the lights of ships."
DRAW = "Draw a map of the town where you grew up and label every street."
SHORT = "Summarize this"
FINE = "Explain why leaves change color in autumn, for a ten-year-old."


@pytest.fixture(autouse=True)
def no_config_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SELFINSTRUCT_"):
            monkeypatch.delenv(name)


def verdicts(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def by_line(out: Path) -> dict[int, str | None]:
    return {v["line"]: v["filter"] for v in verdicts(out)}


def test_text_lines_are_judged_in_order_against_seeds_and_earlier_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "mine.txt"
    lines = [POEM, "", NEAR_POEM, DRAW, "  " + SHORT + "  ", NEAR_SEED, FINE, "   "]
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "verdicts.jsonl"
    assert cli(["filter", str(src), "--out", str(out)]) == 0
    found = verdicts(out)
    assert [v["line"] for v in found] == [1, 3, 4, 5, 6, 7]  # blank lines are no instructions
    assert by_line(out) == {
        1: None,
        3: "rouge_similarity",  # similar to line 1, accepted before it
        4: "blacklist",
        5: "word_count",
        6: "rouge_similarity",  # similar to a seed
        7: None,
    }
    assert found[0] == {
        "line": 1,
        "instruction": POEM,
        "accepted": True,
        "filter": None,
        "reason": None,
    }
    assert found[3]["instruction"] == SHORT  # surrounding whitespace is layout
    assert found[1]["accepted"] is False and POEM[:40] in found[1]["reason"]
    assert SEED[:40] in found[4]["reason"]
    printed = capsys.readouterr().out
    assert "(text, 6 instructions): 2 accepted, 4 rejected" in printed
    assert [ln.split() for ln in printed.splitlines() if ln.strip().startswith("rouge")] == [
        ["rouge_similarity", "2"]
    ]


def test_a_rejected_line_does_not_join_the_pool(tmp_path: Path) -> None:
    # Line 1 is rejected by the blacklist, so line 2 (a near copy) is compared with nothing.
    near_draw = DRAW.replace("street", "road")
    src = tmp_path / "mine.txt"
    src.write_text(f"{DRAW}\n{near_draw.replace('Draw a map of', 'Describe')}\n", encoding="utf-8")
    out = tmp_path / "v.jsonl"
    assert cli(["filter", str(src), "--out", str(out)]) == 0
    assert by_line(out) == {1: "blacklist", 2: None}


def test_jsonl_seed_records_work_and_lines_keep_their_numbers(tmp_path: Path) -> None:
    src = tmp_path / "tasks.jsonl"
    records = [
        {"id": "a", "instruction": POEM, "instances": [], "is_classification": False},
        None,  # a blank line
        {"instruction": NEAR_POEM, "extra": 1},
        {"instruction": FINE},
    ]
    src.write_text(
        "\n".join("" if r is None else json.dumps(r) for r in records) + "\n", encoding="utf-8"
    )
    out = tmp_path / "v.jsonl"
    assert cli(["filter", str(src), "--out", str(out)]) == 0
    assert by_line(out) == {1: None, 3: "rouge_similarity", 4: None}


def test_only_runs_just_the_named_filters(tmp_path: Path) -> None:
    src = tmp_path / "mine.txt"
    src.write_text(f"{POEM}\n{NEAR_POEM}\n{DRAW}\n{SHORT}\n", encoding="utf-8")
    out = tmp_path / "v.jsonl"
    assert cli(["filter", str(src), "--out", str(out), "--only", "blacklist", "--json"]) == 0
    assert by_line(out) == {1: None, 2: None, 3: "blacklist", 4: None}
    assert cli(["filter", str(src), "--out", str(out), "--only", "blacklist,word_count"]) == 0
    assert by_line(out) == {1: None, 2: None, 3: "blacklist", 4: "word_count"}


def test_disable_leaves_the_named_filters_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "mine.txt"
    src.write_text(f"{POEM}\n{NEAR_POEM}\n{DRAW}\n{NEAR_SEED}\n", encoding="utf-8")
    out = tmp_path / "v.jsonl"
    # Drawing a map is also what non_text_modality stops; it goes too.
    flags = ["--disable", "rouge_similarity", "--disable", "blacklist,non_text_modality", "--json"]
    assert cli(["filter", str(src), "--out", str(out), *flags]) == 0
    assert by_line(out) == {1: None, 2: None, 3: None, 4: None}
    summary = json.loads(capsys.readouterr().out)
    assert "rouge_similarity" not in summary["filters"]
    assert "blacklist" not in summary["filters"]
    assert "word_count" in summary["filters"]


def test_json_summary_counts_by_filter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "mine.txt"
    src.write_text(f"{POEM}\n{NEAR_POEM}\n{DRAW}\n{SHORT}\n{FINE}\n", encoding="utf-8")
    out = tmp_path / "v.jsonl"
    assert cli(["filter", str(src), "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == "text"
    assert (summary["instructions"], summary["accepted"], summary["rejected"]) == (5, 2, 3)
    assert summary["seed_instructions"] == 175
    counts = summary["rejected_by_filter"]
    assert list(counts) == summary["filters"]  # every filter run, in chain order
    assert {k: v for k, v in counts.items() if v} == {
        "rouge_similarity": 1,
        "blacklist": 1,
        "word_count": 1,
    }


def test_seeds_and_config_settings_are_taken_as_run_takes_them(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(
        json.dumps(
            {
                "id": "s1",
                "name": "poem",
                "instruction": POEM,
                "instances": [{"input": "", "output": "Waves."}],
                "is_classification": False,
            }
        )
        + "\n",
        encoding="utf-8",
    )
    config = tmp_path / "config.toml"
    config.write_text("[filters.word_count]\nmin_words = 1\n", encoding="utf-8")
    src = tmp_path / "mine.txt"
    src.write_text(f"{NEAR_POEM}\n{SHORT}\n{NEAR_SEED}\n", encoding="utf-8")
    out = tmp_path / "v.jsonl"
    args = ["filter", str(src), "--out", str(out), "--seeds", str(seeds), "--config", str(config)]
    assert cli(args) == 0
    # NEAR_POEM is near the given seed; the default seeds are not compared with.
    assert by_line(out) == {1: "rouge_similarity", 2: None, 3: None}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"instruction": "a b c d"}\n{"instruction": \n', "bad.jsonl:2: invalid JSON"),
        (b'{"instruction": "a"}\n\n{"prompt": "x"}\n', "bad.jsonl:3: field 'instruction': missing"),
        (b'{"instruction": 5}\n', "bad.jsonl:1: field 'instruction': expected a string, got int"),
        (b'{"instruction": "a"}\n["a"]\n', "bad.jsonl:2: expected a JSON object, got list"),
        (b'{"instruction": "a"}\n{"instruction": "caf\xe9"}\n', "bad.jsonl:2: not UTF-8"),
    ],
)  # fmt: skip
def test_bad_input_names_file_line_and_field_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_bytes(content)
    out = tmp_path / "v.jsonl"
    out.write_text("previous verdicts\n", encoding="utf-8")
    assert cli(["filter", str(src), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert out.read_text(encoding="utf-8") == "previous verdicts\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "v.jsonl"]


def test_text_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    src = tmp_path / "latin1.txt"
    src.write_bytes(b"First line is fine here.\nSecond caf\xe9 line.\n")
    with pytest.raises(Exception, match=r"latin1\.txt:2: not UTF-8 \(byte 0xe9 at column 11\)"):
        read_instructions(src)


@pytest.mark.parametrize(
    ("flag", "name", "says"),
    [
        ("--only", "blacklst", "'blacklst' is not an instruction filter"),
        ("--disable", "nope", "'nope' is not an instruction filter"),
        ("--only", "empty_output", "'empty_output' is an instance filter"),
    ],
)
def test_unknown_filter_names_are_refused_listing_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, name: str, says: str
) -> None:
    src = tmp_path / "mine.txt"
    src.write_text(f"{POEM}\n", encoding="utf-8")
    out = tmp_path / "v.jsonl"
    assert cli(["filter", str(src), "--out", str(out), flag, name]) == 2
    err = capsys.readouterr().err
    assert f"{flag} {says}" in err
    assert "blacklist" in err and "rouge_similarity" in err and "word_count" in err
    assert not out.exists()


def test_out_equal_to_in_is_refused_and_the_input_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "mine.txt"
    src.write_text(f"{POEM}\n", encoding="utf-8")
    link = tmp_path / "link.txt"
    link.symlink_to(src)
    for out in (src, link):
        assert cli(["filter", str(src), "--out", str(out)]) == 1
        assert "is the input file" in capsys.readouterr().err
    assert src.read_text(encoding="utf-8") == f"{POEM}\n"


def test_out_inside_a_run_directory_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "checkpoint.sqlite").write_bytes(b"")
    (run_dir / "tasks.jsonl").write_text("precious\n", encoding="utf-8")
    src = tmp_path / "mine.txt"
    src.write_text(f"{POEM}\n", encoding="utf-8")
    assert cli(["filter", str(src), "--out", str(run_dir / "tasks.jsonl")]) == 1
    assert "is a file of the run directory" in capsys.readouterr().err
    assert (run_dir / "tasks.jsonl").read_text(encoding="utf-8") == "precious\n"


def test_python_dash_m_runs_the_command(tmp_path: Path) -> None:
    src = tmp_path / "mine.txt"
    src.write_text(f"{POEM}\n{NEAR_POEM}\n", encoding="utf-8")
    out = tmp_path / "v.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SELFINSTRUCT_")}
    done = subprocess.run(
        [sys.executable, "-m", "selfinstruct_async", "filter", str(src), "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "1 accepted, 1 rejected" in done.stdout
    assert by_line(out) == {1: None, 2: "rouge_similarity"}
