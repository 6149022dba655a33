"""Seed files: the paper's schema is read, and every defect names file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfinstruct_async.errors import SeedFileError
from selfinstruct_async.seeds import DEFAULT_SEEDS, load_seed_tasks

PAPER_SEEDS = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "self_instruct_seed_tasks.jsonl"
)

GOOD = {
    "id": "t1",
    "name": "n",
    "instruction": "Say hello to the user politely.",
    "instances": [{"input": "", "output": "Hello!"}],
    "is_classification": False,
}


def write_lines(tmp_path: Path, lines: list[str | bytes]) -> Path:
    path = tmp_path / "seeds.jsonl"
    path.write_bytes(b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines))
    return path


def test_reads_the_papers_seed_file_when_present() -> None:
    if not PAPER_SEEDS.exists():
        pytest.skip("../shared/data is not present in this checkout")
    tasks = load_seed_tasks(PAPER_SEEDS)
    assert len(tasks) == 175
    assert sum(t.is_classification for t in tasks) == 26
    assert sum(t.instances[0].input == "" for t in tasks) == 50


def test_reads_the_projects_own_seed_file() -> None:
    tasks = load_seed_tasks(DEFAULT_SEEDS)
    assert len(tasks) == 175 and len({t.id for t in tasks}) == 175


@pytest.mark.parametrize(
    ("mutate", "line", "field"),
    [
        (lambda d: d.pop("instruction"), 2, "instruction"),
        (lambda d: d.update(is_classification="no"), 2, "is_classification"),
        (lambda d: d.update(instances=[{"input": 3, "output": "x"}]), 2, "instances[0].input"),
        (lambda d: d.update(instances=[]), 2, "instances"),
        (lambda d: d.update(id=7), 2, "id"),
    ],
)
def test_malformed_task_names_line_and_field(
    tmp_path: Path, mutate: object, line: int, field: str
) -> None:
    bad = dict(GOOD, id="t2")
    mutate(bad)  # type: ignore[operator]
    path = write_lines(tmp_path, [json.dumps(GOOD), json.dumps(bad)])
    with pytest.raises(SeedFileError) as raised:
        load_seed_tasks(path)
    assert (raised.value.line, raised.value.field) == (line, field)
    assert f"{path}:{line}: field '{field}'" in str(raised.value)


def test_bad_json_names_the_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path, [json.dumps(GOOD), "{not json"])
    with pytest.raises(SeedFileError, match=r"seeds.jsonl:2: invalid JSON"):
        load_seed_tasks(path)


def test_non_utf8_names_the_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path, [json.dumps(GOOD), b'{"id": "\xff"}'])
    with pytest.raises(SeedFileError, match=r"seeds.jsonl:2: not UTF-8"):
        load_seed_tasks(path)


def test_duplicate_ids_name_both_lines(tmp_path: Path) -> None:
    path = write_lines(tmp_path, [json.dumps(GOOD), json.dumps(GOOD)])
    with pytest.raises(
        SeedFileError, match=r"seeds.jsonl:2: field 'id': duplicate id 't1' \(first on line 1\)"
    ):
        load_seed_tasks(path)


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    path = write_lines(tmp_path, ["", "  "])
    with pytest.raises(SeedFileError, match="contains no seed tasks"):
        load_seed_tasks(path)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SeedFileError, match="not found"):
        load_seed_tasks(tmp_path / "nope.jsonl")


def test_shipped_seed_sets_are_found_by_name_and_a_real_file_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from selfinstruct_async.seeds import DEFAULT_SEEDS, builtin_seed_path, resolve_seeds

    assert resolve_seeds("") == DEFAULT_SEEDS and len(load_seed_tasks(DEFAULT_SEEDS)) == 175
    zh = resolve_seeds("zh")
    assert zh == builtin_seed_path("zh") and load_seed_tasks(zh)[0].id.startswith("zh_")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "zh").write_text("")
    assert resolve_seeds("zh") == Path("zh")
