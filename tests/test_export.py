"""``selfinstruct export``: formats, options, streaming safety and atomic writes."""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from selfinstruct_async.errors import CheckpointError, ExportError
from selfinstruct_async.outputs import export
from selfinstruct_async.outputs.export import ExportOptions, export_run
from selfinstruct_async.records import Instance, Task
from selfinstruct_async.seeds import DEFAULT_SEEDS, load_seed_tasks
from tests.test_stats import build_run, make_tasks


def triples(tasks: list[Task], k: int | None = None) -> list[tuple[str, str, str]]:
    return [
        (t.instruction, i.input, i.output)
        for t in tasks
        for i in (t.instances if k is None else t.instances[:k])
    ]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def alpaca_triples(path: Path) -> list[tuple[str, str, str]]:
    return [(r["instruction"], r["input"], r["output"]) for r in json.loads(path.read_text())]


@pytest.fixture
def tasks() -> list[Task]:
    return make_tasks(60, seed=3)


@pytest.fixture
def run_dir(tmp_path: Path, tasks: list[Task]) -> Path:
    return build_run(tmp_path / "run", tasks)


def test_alpaca_is_a_json_list_of_every_instance_in_order(run_dir: Path, tasks: list[Task]) -> None:
    out = run_dir.parent / "alpaca.json"
    result = export_run(run_dir, out, ExportOptions("alpaca"))
    rows = json.loads(out.read_text())
    assert all(set(r) == {"instruction", "input", "output"} for r in rows)
    assert alpaca_triples(out) == triples(tasks)
    assert result.rows == len(rows) and result.tasks_read == 60


def test_alpaca_of_an_empty_run_is_an_empty_list(tmp_path: Path) -> None:
    run_dir = build_run(tmp_path / "run", [])
    (run_dir / "tasks.jsonl").touch()
    export_run(run_dir, tmp_path / "a.json", ExportOptions("alpaca"))
    assert json.loads((tmp_path / "a.json").read_text()) == []


def test_openai_chat_rows_are_user_then_assistant(run_dir: Path, tasks: list[Task]) -> None:
    out = run_dir.parent / "chat.jsonl"
    export_run(run_dir, out, ExportOptions("openai-chat"))
    rows = read_jsonl(out)
    expected = triples(tasks)
    assert len(rows) == len(expected)
    for row, (instruction, text, output) in zip(rows, expected, strict=True):
        user, assistant = row["messages"]
        assert user["role"] == "user" and assistant == {"role": "assistant", "content": output}
        assert user["content"] == (f"{instruction}\n\n{text}" if text else instruction)


def test_prompt_completion_varies_templates_deterministically(
    run_dir: Path, tasks: list[Task]
) -> None:
    out1, out2 = run_dir.parent / "pc1.jsonl", run_dir.parent / "pc2.jsonl"
    export_run(run_dir, out1, ExportOptions("prompt-completion"))
    export_run(run_dir, out2, ExportOptions("prompt-completion"))
    assert out1.read_bytes() == out2.read_bytes()
    rows = read_jsonl(out1)
    used: Counter[int] = Counter()
    for row, (instruction, text, output) in zip(rows, triples(tasks), strict=True):
        assert set(row) == {"prompt", "completion"}
        assert instruction in row["prompt"] and row["completion"] == " " + output
        assert (text in row["prompt"]) if text else "{input}" not in row["prompt"]
        assert row["prompt"].endswith(":")
        matches = [
            i
            for i, pair in enumerate(export.PROMPT_TEMPLATES)
            if row["prompt"] == pair[0 if text else 1].format(instruction=instruction, input=text)
        ]
        assert matches
        used[matches[0]] += 1
    assert len(used) == len(export.PROMPT_TEMPLATES)  # 150-odd rows use every template


def test_hf_jsonl_has_flat_consistent_columns(run_dir: Path) -> None:
    out = run_dir.parent / "hf.jsonl"
    export_run(run_dir, out, ExportOptions("hf-jsonl", include_seeds=True))
    rows = read_jsonl(out)
    schema = {k: type(v) for k, v in rows[0].items()}
    assert all({k: type(v) for k, v in r.items()} == schema for r in rows)
    assert all(not isinstance(v, dict | list) for r in rows for v in r.values())
    assert Counter(r["source"] for r in rows).keys() == {"seed", "generated"}
    assert len({r["id"] for r in rows}) == len(rows)


def test_hf_jsonl_loads_with_datasets(run_dir: Path, tasks: list[Task]) -> None:
    datasets = pytest.importorskip("datasets")
    out = run_dir.parent / "hf.jsonl"
    export_run(run_dir, out, ExportOptions("hf-jsonl", include_seeds=True))
    ds = datasets.load_dataset(
        "json", data_files=str(out), split="train", cache_dir=str(run_dir.parent / "cache")
    )
    seeds = load_seed_tasks(DEFAULT_SEEDS)
    assert ds.num_rows == len(triples(tasks)) + sum(len(s.instances) for s in seeds)
    assert set(ds.column_names) >= {"instruction", "input", "output", "is_classification"}
    assert ds.features["is_classification"].dtype == "bool"


def test_include_seeds_puts_the_seed_instances_first(run_dir: Path, tasks: list[Task]) -> None:
    seeds_file = run_dir.parent / "seeds.jsonl"
    seed = {
        "id": "s1",
        "name": "n",
        "instruction": "Name a colour.",
        "instances": [{"input": "", "output": "Blue"}],
        "is_classification": False,
    }
    seeds_file.write_text(json.dumps(seed) + "\n")
    out = run_dir.parent / "a.json"
    result = export_run(
        run_dir, out, ExportOptions("alpaca", include_seeds=True, seeds_path=seeds_file)
    )
    assert alpaca_triples(out) == [("Name a colour.", "", "Blue"), *triples(tasks)]
    assert result.seed_tasks == 1


def test_max_instances_keeps_the_first_k_of_each_task(run_dir: Path, tasks: list[Task]) -> None:
    out = run_dir.parent / "a.json"
    export_run(run_dir, out, ExportOptions("alpaca", max_instances=2))
    assert alpaca_triples(out) == triples(tasks, 2)
    assert len(triples(tasks, 2)) < len(triples(tasks))


@pytest.mark.parametrize("bucket_bytes", [1 << 30, 2000])
def test_dedup_drops_repeats_and_keeps_first_occurrence_order(
    tmp_path: Path, tasks: list[Task], bucket_bytes: int
) -> None:
    dup = Task("si-900-0", tasks[5].instruction, False, (tasks[5].instances[0], Instance("", "x")))
    all_tasks = [*tasks[:20], dup, *tasks[20:], replace(tasks[3], id="si-901-0")]
    run_dir = build_run(tmp_path / "run", all_tasks)
    out = tmp_path / "a.json"
    result = export_run(
        run_dir, out, ExportOptions("alpaca", dedup=True, bucket_bytes=bucket_bytes)
    )
    expected = list(dict.fromkeys(triples(all_tasks)))
    assert alpaca_triples(out) == expected
    assert result.duplicates_dropped == len(triples(all_tasks)) - len(expected) > 0


def _shuffled(run_dir: Path, seed: int, bucket_bytes: int = 1 << 30, **kw: Any) -> list[Any]:
    out = run_dir.parent / f"s-{seed}-{bucket_bytes}.json"
    export_run(
        run_dir,
        out,
        ExportOptions("alpaca", shuffle_seed=seed, bucket_bytes=bucket_bytes, **kw),
    )
    return alpaca_triples(out)


def test_shuffle_is_a_stable_permutation_that_depends_on_the_seed(
    run_dir: Path, tasks: list[Task]
) -> None:
    a = _shuffled(run_dir, 1)
    assert sorted(a) == sorted(triples(tasks)) and a != triples(tasks)
    assert _shuffled(run_dir, 1) == a
    assert _shuffled(run_dir, 2) != a
    # many small buckets sort to exactly the same global order as one big one
    assert _shuffled(run_dir, 1, bucket_bytes=1500) == a


def test_shuffle_keeps_the_relative_order_of_rows_when_the_run_grows(
    tmp_path: Path, tasks: list[Task]
) -> None:
    small = _shuffled(build_run(tmp_path / "small" / "run", tasks[:30]), 7)
    grown = _shuffled(build_run(tmp_path / "big" / "run", tasks), 7)
    assert [row for row in grown if row in set(small)] == small


def test_shuffle_with_dedup_drops_repeats(tmp_path: Path, tasks: list[Task]) -> None:
    again = [replace(t, id=f"again-{i}") for i, t in enumerate(tasks[:10])]
    run_dir = build_run(tmp_path / "run", [*tasks, *again])
    rows = _shuffled(run_dir, 3, bucket_bytes=3000, dedup=True)
    assert sorted(rows) == sorted(set(triples(tasks)))


def test_split_partitions_rows_by_content_and_survives_growth(
    tmp_path: Path, tasks: list[Task]
) -> None:
    many = make_tasks(400, seed=9)
    out = tmp_path / "train.jsonl"
    result = export_run(
        build_run(tmp_path / "run", many), out, ExportOptions("openai-chat", split=0.2)
    )
    assert result.validation_out == tmp_path / "train.validation.jsonl"
    train = [json.dumps(r) for r in read_jsonl(out)]
    val = [json.dumps(r) for r in read_jsonl(result.validation_out)]
    assert result.rows == len(train) and result.validation_rows == len(val)
    assert len(train) + len(val) == len(triples(many))
    assert 0.15 < len(val) / (len(train) + len(val)) < 0.25
    assert not set(train) & set(val)
    # the run grows: rows already there keep their side
    grown = tmp_path / "grown"
    grown.mkdir()
    out2 = grown / "train.jsonl"
    r2 = export_run(
        build_run(grown / "run", [*many, *make_tasks(100, seed=10, prefix="new")]),
        out2,
        ExportOptions("openai-chat", split=0.2),
    )
    assert r2.validation_out is not None
    val2 = {json.dumps(r) for r in read_jsonl(r2.validation_out)}
    train2 = {json.dumps(r) for r in read_jsonl(out2)}
    assert set(val) <= val2 and set(train) <= train2


def test_torn_last_line_of_a_running_daemon_is_ignored(run_dir: Path, tasks: list[Task]) -> None:
    with open(run_dir / "tasks.jsonl", "a", encoding="utf-8") as f:
        f.write('{"id": "si-77-1", "instruction": "Write a po')
    out = run_dir.parent / "a.json"
    result = export_run(run_dir, out, ExportOptions("alpaca"))
    assert alpaca_triples(out) == triples(tasks)
    assert result.torn_tail and "incomplete last line" in result.notes[0]


def test_a_damaged_line_is_skipped_with_a_warning_naming_file_line_and_field(
    run_dir: Path, tasks: list[Task], caplog: pytest.LogCaptureFixture
) -> None:
    out = run_dir.parent / "a.json"
    lines = (run_dir / "tasks.jsonl").read_text().splitlines(keepends=True)
    bad = json.loads(lines[2])
    bad["instances"][0]["output"] = 42
    lines[2] = json.dumps(bad) + "\n"
    (run_dir / "tasks.jsonl").write_text("".join(lines))
    with caplog.at_level(logging.WARNING, logger="selfinstruct_async"):
        result = export_run(run_dir, out, ExportOptions("alpaca", split=0.1, shuffle_seed=1))
    assert f"{run_dir / 'tasks.jsonl'}:3: field 'instances[0].output': expected str" in caplog.text
    assert result.tasks_read == len(tasks) - 1
    assert "skipped 1 line that is not a task" in result.notes[0]
    exported = alpaca_triples(out)
    assert result.validation_out is not None
    exported += alpaca_triples(result.validation_out)
    assert sorted(exported) == sorted(triples(tasks[:2] + tasks[3:]))
    assert sorted(p.name for p in run_dir.parent.iterdir()) == [
        "a.json",
        "a.validation.json",
        "run",
    ]


def test_outputs_are_replaced_atomically_with_ordinary_permissions(run_dir: Path) -> None:
    out = run_dir.parent / "a.jsonl"
    out.write_text("old\n")
    inode = out.stat().st_ino
    export_run(run_dir, out, ExportOptions("hf-jsonl"))
    assert out.stat().st_ino != inode  # renamed into place, not rewritten
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


def test_missing_tasks_jsonl_and_bad_options_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    with pytest.raises(CheckpointError, match=r"no tasks\.jsonl here"):
        export_run(tmp_path / "run", tmp_path / "a.json", ExportOptions("alpaca"))
    with pytest.raises(CheckpointError, match="no such run directory"):
        export_run(tmp_path / "nope", tmp_path / "a.json", ExportOptions("alpaca"))
    with pytest.raises(ExportError, match="--split: must be between 0 and 1"):
        export_run(tmp_path / "run", tmp_path / "a.json", ExportOptions("alpaca", split=1.5))


def test_cli_writes_the_file_and_reports_counts(
    run_dir: Path, tasks: list[Task], capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    export.add_parser(parser.add_subparsers(dest="command", required=True))
    out = run_dir.parent / "chat.jsonl"
    args = parser.parse_args(
        ["export", str(run_dir), "--format", "openai-chat", "--out", str(out), "--dedup"]
    )
    assert args.func(args) == 0
    assert len(read_jsonl(out)) == len(set(triples(tasks)))
    assert f"{len(set(triples(tasks)))} rows (openai-chat) from 60 tasks" in capsys.readouterr().out
