"""``selfinstruct report``: figures hold the right data, the page holds the numbers."""

from __future__ import annotations

import argparse
import base64
import json
import re
import struct
import sys
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from selfinstruct_async.errors import ReportError
from selfinstruct_async.outputs import report
from selfinstruct_async.outputs.verb_noun import verb_object, verb_object_counts
from selfinstruct_async.records import Instance, Task
from selfinstruct_async.seeds import DEFAULT_SEEDS, load_seed_tasks
from tests.test_stats import ADJECTIVES, COUNTERS, USAGE, build_run, make_tasks

pytest.importorskip("matplotlib")


def png_chunks(data: bytes) -> tuple[tuple[int, int], dict[str, str], list[bytes]]:
    """(width, height), tEXt chunks and chunk types of a PNG, checking every CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, texts, kinds, size = 8, {}, [], (0, 0)
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        if kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            texts[key.decode("latin-1")] = value.decode("latin-1")
        kinds.append(kind)
        pos += 12 + length
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    return size, texts, kinds


def embedded(path: Path) -> Any:
    return json.loads(png_chunks(path.read_bytes())[1][report.PNG_DATA_KEY])


def colours(path: Path) -> set[tuple[int, ...]]:
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        found = image.convert("RGB").getcolors(maxcolors=1 << 20) or []
    return {tuple(c) for _, c in found if isinstance(c, tuple)}


@pytest.fixture(scope="module")
def tasks() -> list[Task]:
    tasks = make_tasks(80, seed=5)
    seed = load_seed_tasks(DEFAULT_SEEDS)[0]
    # a verbatim copy of a seed instruction: its overlap with the pool is exactly 1
    return [*tasks, Task("si-500-0", seed.instruction, False, (Instance("", "ok"),))]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, tasks: list[Task]) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("report")
    run_dir = build_run(
        root / "run",
        tasks,
        counters=COUNTERS,
        usage=USAGE,
        config={"endpoints": [{"prompt_price": 0.5, "completion_price": 2.0}]},
    )
    out = root / "out"
    report.build_report(run_dir, out)
    return run_dir, out


def test_figures_are_valid_pngs_of_the_configured_size(built: tuple[Path, Path]) -> None:
    _, out = built
    for name, size in [
        ("similarity.png", report.SIMILARITY_SIZE),
        ("lengths.png", report.LENGTHS_SIZE),
        ("verbs.png", report.VERBS_SIZE),
    ]:
        (width, height), texts, kinds = png_chunks((out / name).read_bytes())
        assert (width, height) == (size[0] * report.DPI, size[1] * report.DPI)
        assert b"IDAT" in kinds and texts["Software"] == "selfinstruct-async"
        assert len(colours(out / name)) > 20  # drawn, not blank


def test_length_figure_plots_the_histograms_of_the_run(
    built: tuple[Path, Path], tasks: list[Task]
) -> None:
    data = embedded(built[1] / "lengths.png")
    instruction = [len(t.instruction.split()) for t in tasks]
    inputs = [len(i.input.split()) for t in tasks for i in t.instances if i.input]
    outputs = [len(i.output.split()) for t in tasks for i in t.instances]
    for name, values in [
        ("instruction", instruction),
        ("non-empty input", inputs),
        ("output", outputs),
    ]:
        expected = report.histogram(values, report.length_edges(values))
        assert data[name] == {"edges": list(expected.edges), "counts": list(expected.counts)}
        assert sum(data[name]["counts"]) == len(values)
        # spot-check one bin by hand
        lo, hi = data[name]["edges"][1], data[name]["edges"][2]
        assert data[name]["counts"][1] == sum(lo <= v < hi for v in values)
    assert (0x55, 0xA8, 0x68) in colours(built[1] / "lengths.png")  # the input bars, #55a868


def test_similarity_scores_are_rouge_l_against_the_earlier_pool() -> None:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    pool = ["Write a poem about the sea.", "Sort the numbers in ascending order."]
    instructions = [
        "Write a short poem about the sea.",
        "Translate the sentence into French.",
        "Translate the sentence into German.",
        "Sort the numbers in ascending order.",
    ]
    got = report.similarity_scores(pool, instructions, sample=None)
    expected = []
    for i, text in enumerate(instructions):
        earlier = pool + instructions[:i]
        expected.append(max(scorer.score(p, text)["rougeL"].fmeasure for p in earlier))
    assert got == pytest.approx(expected)
    assert got[3] == 1.0 and got[2] > 0.8 > got[1]


def test_similarity_sample_scores_evenly_spaced_instructions_against_the_full_pool() -> None:
    instructions = [f"Write item number {i} of the list." for i in range(10)]
    full = report.similarity_scores([], instructions, sample=None)
    assert report.similarity_scores([], instructions, sample=5) == [
        full[i] for i in range(0, 10, 2)
    ]


def test_similarity_figure_counts_every_generated_instruction(
    built: tuple[Path, Path], tasks: list[Task]
) -> None:
    data = embedded(built[1] / "similarity.png")
    seeds = [s.instruction for s in load_seed_tasks(DEFAULT_SEEDS)]
    scores = report.similarity_scores(seeds, [t.instruction for t in tasks])
    expected = report.histogram(scores, report.similarity_edges())
    assert data["counts"] == list(expected.counts) and sum(data["counts"]) == len(tasks)
    assert data["counts"][-1] >= 1  # the copied seed instruction scores 1.0


@pytest.mark.parametrize(
    ("instruction", "expected"),
    [
        ("Write a short poem about the sea.", ("write", "poem")),
        ("Please generate a list of five fruits.", ("generate", "list")),
        ("Can you tell me a funny joke?", ("tell", "joke")),
        ("Given a list of numbers, find the largest prime number.", ("find", "number")),
        ("Implement a Python function that reverses a string.", ("implement", "function")),
        ("Explain how vaccines work.", ("explain", None)),
        ("Point out the flaw in the argument.", ("point", "flaw")),
        ("What is the capital of France?", None),
        ("Maria is three times as old as her son.", None),
    ],
)
def test_leading_verb_and_object_heuristic(
    instruction: str, expected: tuple[str, str | None] | None
) -> None:
    assert verb_object(instruction) == expected


def test_verb_figure_holds_the_top_verbs_with_their_top_objects(
    built: tuple[Path, Path], tasks: list[Task]
) -> None:
    data = embedded(built[1] / "verbs.png")
    summary = verb_object_counts([t.instruction for t in tasks], 20, 4)
    assert data["instructions"] == len(tasks)
    assert [v["verb"] for v in data["verbs"]] == [v.verb for v in summary.verbs]
    write = next(v for v in data["verbs"] if v["verb"] == "write")
    # make_tasks writes "Write a [adjective] <object> about ...": count the objects directly
    objects: Counter[str] = Counter()
    for t in tasks:
        w = t.instruction.split()
        if w[0] == "Write":
            objects[w[3] if w[2] in ADJECTIVES else w[2]] += 1
    assert write["count"] == sum(objects.values())
    top = sorted(objects.items(), key=lambda on: (-on[1], on[0]))[:4]
    assert [tuple(o) for o in write["objects"]] == top


def test_html_is_self_contained_and_shows_the_numbers(
    built: tuple[Path, Path], tasks: list[Task]
) -> None:
    _, out = built
    page = (out / "report.html").read_text(encoding="utf-8")
    stats = json.loads((out / "report.json").read_text())["stats"]
    d = stats["dataset"]
    assert f"<td>{d['instructions']:,}</td>" in page
    assert f"<td>{d['instances_empty_input']:,}</td>" in page
    assert f"<td>{d['avg_output_words']:,.1f}</td>" in page
    share = stats["acceptance"]["instruction"]["filters"]["rouge_similarity"]["rejected_share"]
    assert "rejected by rouge_similarity" in page and f"<td>{100 * share:.1f}%</td>" in page
    assert "$3.0000" in page  # total cost at the run's endpoint prices
    # The usage table shows the prompt cache's share and the Batch API requests, by stage.
    assert "<th>cached</th>" in page and "<th>batch</th>" in page
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert sorted(base64.b64decode(i) for i in images) == sorted(
        (out / n).read_bytes() for n in ("similarity.png", "lengths.png", "verbs.png")
    )
    assert not re.search(r"(src|href)=['\"]?(https?:|//|file:)", page)


def test_report_works_on_a_run_with_a_torn_last_line(tmp_path: Path) -> None:
    run_dir = build_run(tmp_path / "run", make_tasks(10))
    with open(run_dir / "tasks.jsonl", "a", encoding="utf-8") as f:
        f.write('{"id": "si-1-0", "instr')
    report.build_report(run_dir, tmp_path / "out", similarity_sample=None)
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data["stats"]["dataset"]["instructions"] == 10
    assert any("incomplete last line" in n for n in data["stats"]["notes"])


def test_missing_matplotlib_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = build_run(tmp_path / "run", make_tasks(3))
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ReportError, match=r"pip install 'selfinstruct-async\[report\]'"):
        report.build_report(run_dir, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_lists_the_files_it_wrote(
    built: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    report.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["report", str(built[0]), "--out", str(tmp_path / "r")])
    assert args.func(args) == 0
    printed = capsys.readouterr().out.split()
    assert sorted(Path(p).name for p in printed) == [
        "lengths.png",
        "report.html",
        "report.json",
        "similarity.png",
        "verbs.png",
    ]
