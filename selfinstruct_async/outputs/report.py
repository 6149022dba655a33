"""``selfinstruct report``: the paper's figures for a run as PNGs plus one self-contained HTML page.

Figures (matplotlib, drawn on an Agg canvas without pyplot, so no display is needed):

* ``similarity.png``: ROUGE-L F between each generated instruction and its most similar
  instruction in the pool before it. The pool is the seed tasks plus the instructions of
  the earlier lines of ``tasks.jsonl``, which is the order tasks finished in. On big runs
  every instruction joins the pool but only an evenly spaced sample of at most
  ``--similarity-sample`` instructions is scored (each score costs one pass over the pool);
* ``lengths.png``: distributions of instruction, non-empty input and output lengths in
  words, as in the paper;
* ``verbs.png``: the most common leading verbs (inner ring) and their most common objects
  (outer ring), found by the rules in :mod:`selfinstruct_async.outputs.verb_noun`;
* ``report.html``: the stats tables and the figures (base64 ``data:`` URIs), one file;
* ``report.json``: the same numbers for machines.

Each PNG also carries the numbers it plots as JSON in a ``tEXt`` chunk named
``SelfInstructData``, so tests and scripts can check a figure against its data.
Reading is safe while a daemon writes to the run (see :mod:`selfinstruct_async.outputs.stats`).
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import math
from array import array
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..checkpoint.run_files import refuse_run_file
from ..checkpoint.tasks_file import TasksReader
from ..errors import ReportError
from .atomic_files import replacing
from .prices import load_prices
from .report_html import render_html
from .stats import Table1, compute_stats, words
from .verb_noun import VerbCount, VerbSummary, verb_object_counts

PNG_DATA_KEY = "SelfInstructData"
DPI = 100
SIMILARITY_SIZE = (8.0, 4.5)
LENGTHS_SIZE = (12.0, 4.0)
VERBS_SIZE = (9.0, 9.0)
SIMILARITY_BINS = 20  # bins of width 0.05 over [0, 1]
LENGTH_BINS = 40
DEFAULT_SIMILARITY_SAMPLE = 10_000
REPORT_EXTRA = "selfinstruct-async[report]"
REPORT_FILES = ("similarity.png", "lengths.png", "verbs.png", "report.html", "report.json")


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class Histogram:
    """Bin edges and counts, exactly what a figure's bars show."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.counts)


def histogram(values: Sequence[float], edges: Sequence[float]) -> Histogram:
    """Counts of ``values`` per bin ``[edges[i], edges[i+1])``; the last bin is closed."""
    import numpy as np

    counts, _ = np.histogram(np.asarray(values, dtype=float), bins=np.asarray(edges, dtype=float))
    return Histogram(tuple(float(e) for e in edges), tuple(int(c) for c in counts))


def similarity_edges() -> list[float]:
    return [round(i / SIMILARITY_BINS, 10) for i in range(SIMILARITY_BINS + 1)]


def length_edges(values: Sequence[int], bins: int = LENGTH_BINS) -> list[float]:
    """Integer-width bins from 0 past the longest value, at most ``bins`` of them."""
    top = max(values, default=0) + 1
    width = max(1, math.ceil(top / bins))
    return [float(width * i) for i in range(math.ceil(top / width) + 1)]


def similarity_scores(
    pool: Sequence[str],
    instructions: Sequence[str],
    *,
    sample: int | None = DEFAULT_SIMILARITY_SAMPLE,
    tokenizer: str = "rouge",
) -> list[float]:
    """For (a sample of) ``instructions``: ROUGE-L F with the most similar earlier text.

    ``pool`` (the seeds) comes before every instruction; each instruction joins the pool
    after it is scored. With ``sample``, only evenly spaced instructions are scored.
    """
    from ..similarity import SimilarityIndex

    n = len(instructions)
    chosen: set[int] | None = None
    if sample is not None and n > sample:
        chosen = {i * n // sample for i in range(sample)}
    index = SimilarityIndex(tokenizer=tokenizer, on_empty="ignore")
    index.extend(pool)
    scores: list[float] = []
    for i, text in enumerate(instructions):
        if chosen is None or i in chosen:
            best = index.most_similar(text, k=1)
            scores.append(best[0][1] if best else 0.0)
        index.add(text)
    return scores


@dataclass
class ReportData:
    """Everything the figures and the page are drawn from."""

    table: Table1
    instructions: list[str]
    instruction_words: array[int]
    input_words: array[int]  # non-empty inputs only, as in the paper
    output_words: array[int]
    notes: list[str] = field(default_factory=list)  # what the reader left out of tasks.jsonl


def collect(run_dir: Path) -> ReportData:
    """One streaming pass over ``tasks.jsonl``."""
    task_file = TasksReader.in_run(run_dir)
    data = ReportData(Table1(), [], array("i"), array("i"), array("i"))
    for task in task_file:
        data.table.add(task)
        data.instructions.append(task.instruction)
        data.instruction_words.append(words(task.instruction))
        for inst in task.instances:
            if inst.input.strip():
                data.input_words.append(words(inst.input))
            data.output_words.append(words(inst.output))
    data.notes = task_file.notes("tasks.jsonl")
    return data


@dataclass(frozen=True)
class Figures:
    """The data of every figure."""

    similarity: Histogram
    similarity_scored: int
    similarity_mean: float | None
    similarity_median: float | None
    instruction_lengths: Histogram
    input_lengths: Histogram
    output_lengths: Histogram
    verbs: VerbSummary


def figure_data(
    data: ReportData,
    seeds: Sequence[str],
    *,
    similarity_sample: int | None = DEFAULT_SIMILARITY_SAMPLE,
    tokenizer: str = "rouge",
    top_verbs: int = 20,
    top_objects: int = 4,
) -> Figures:
    """Compute what the figures plot (the plotting functions draw exactly this)."""
    import numpy as np

    scores = similarity_scores(
        seeds, data.instructions, sample=similarity_sample, tokenizer=tokenizer
    )
    return Figures(
        similarity=histogram(scores, similarity_edges()),
        similarity_scored=len(scores),
        similarity_mean=float(np.mean(scores)) if scores else None,
        similarity_median=float(np.median(scores)) if scores else None,
        instruction_lengths=histogram(data.instruction_words, length_edges(data.instruction_words)),
        input_lengths=histogram(data.input_words, length_edges(data.input_words)),
        output_lengths=histogram(data.output_words, length_edges(data.output_words)),
        verbs=verb_object_counts(data.instructions, top_verbs, top_objects),
    )


# ---------------------------------------------------------------- drawing


def _matplotlib() -> Any:
    try:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
    except ImportError:
        raise ReportError(
            f"selfinstruct report needs matplotlib: pip install '{REPORT_EXTRA}'"
        ) from None
    return matplotlib


def _new_figure(size: tuple[float, float]) -> Any:
    _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any, title: str, data: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(
        buf,
        format="png",
        dpi=DPI,
        metadata={
            "Title": title,
            "Software": "selfinstruct-async",
            PNG_DATA_KEY: json.dumps(data, sort_keys=True),
        },
    )
    return buf.getvalue()


def _bars(ax: Any, hist: Histogram, color: str) -> None:
    edges = hist.edges
    if len(edges) < 2:
        return
    widths = [b - a for a, b in itertools.pairwise(edges)]
    ax.bar(edges[:-1], hist.counts, width=widths, align="edge", color=color, edgecolor="white")


def plot_similarity(figs: Figures, threshold: float = 0.7) -> bytes:
    fig = _new_figure(SIMILARITY_SIZE)
    ax = fig.add_subplot()
    _bars(ax, figs.similarity, "#4c72b0")
    ax.axvline(threshold, color="#c44e52", linestyle="--", label=f"filter threshold {threshold}")
    ax.set_xlim(0, 1)
    ax.set_xlabel("ROUGE-L with the most similar earlier instruction")
    ax.set_ylabel("# instructions")
    ax.set_title(f"Overlap with the pool ({figs.similarity_scored} instructions scored)")
    ax.legend()
    fig.tight_layout()
    return _png(fig, "similarity", asdict(figs.similarity))


def plot_lengths(figs: Figures) -> bytes:
    fig = _new_figure(LENGTHS_SIZE)
    axes = fig.subplots(1, 3)
    panels = (
        ("instruction", figs.instruction_lengths, "#4c72b0"),
        ("non-empty input", figs.input_lengths, "#55a868"),
        ("output", figs.output_lengths, "#dd8452"),
    )
    for ax, (name, hist, color) in zip(axes, panels, strict=True):
        _bars(ax, hist, color)
        ax.set_xlabel(f"{name} length (words)")
        ax.set_ylabel("count")
        ax.set_title(f"{name} ({hist.total})")
    fig.tight_layout()
    return _png(
        fig,
        "lengths",
        {name: asdict(hist) for name, hist, _ in panels},
    )


def _outer_ring(verbs: Sequence[VerbCount], inner_colors: Sequence[Any]) -> _Ring:
    """Each verb's top objects in its colour, then the rest of the verb, paler and unlabelled."""
    ring = _Ring([], [], [])
    for v, color in zip(verbs, inner_colors, strict=True):
        shown = 0
        for obj, n in v.objects:
            ring.add(n, obj, (*color[:3], 0.75))
            shown += n
        if v.count > shown:
            ring.add(v.count - shown, "", (*color[:3], 0.25))
    return ring


@dataclass
class _Ring:
    """The wedges of one ring of the verbs figure."""

    sizes: list[int]
    labels: list[str]
    colors: list[Any]

    def add(self, size: int, label: str, color: Any) -> None:
        self.sizes.append(size)
        self.labels.append(label)
        self.colors.append(color)

    def draw(self, ax: Any, total: int, **style: Any) -> None:
        """Wedges; labels only on those of at least ``min_share`` of ``total``."""
        share = style.pop("min_share")
        labels = [
            label if n / total >= share else ""
            for label, n in zip(self.labels, self.sizes, strict=True)
        ]
        ax.pie(
            self.sizes,
            colors=self.colors,
            labels=labels,
            wedgeprops={"width": 0.35, "edgecolor": "white"},
            startangle=90,
            counterclock=False,
            **style,
        )


def plot_verbs(figs: Figures) -> bytes:
    """Inner ring: top verbs; outer ring: each verb's top objects (and the rest of it)."""
    matplotlib = _matplotlib()
    fig = _new_figure(VERBS_SIZE)
    ax = fig.add_subplot()
    summary = figs.verbs
    verbs = summary.verbs
    if not verbs:
        ax.text(0.5, 0.5, "no verb-led instructions", ha="center", va="center")
        ax.set_axis_off()
        return _png(fig, "verbs", asdict(summary))
    cmap = matplotlib.colormaps["tab20"]
    inner_colors = [cmap(i % 20) for i in range(len(verbs))]
    inner = _Ring([v.count for v in verbs], [v.verb for v in verbs], inner_colors)
    total = sum(v.count for v in verbs)
    inner.draw(
        ax, total, min_share=0.015, radius=0.65, labeldistance=0.55, textprops={"fontsize": 9}
    )
    _outer_ring(verbs, inner_colors).draw(
        ax,
        total,
        min_share=0.008,
        radius=1.0,
        labeldistance=0.83,
        rotatelabels=True,
        textprops={"fontsize": 7},
    )
    ax.set_title(
        f"Top {len(verbs)} leading verbs and their top objects "
        f"({summary.with_verb} of {summary.instructions} instructions start with a verb)"
    )
    ax.set_aspect("equal")
    return _png(fig, "verbs", asdict(summary))


# ---------------------------------------------------------------- the report


def _write_atomic(path: Path, data: bytes) -> None:
    with replacing(path, binary=True) as f:
        f.write(data)


def build_report(
    run_dir: Path,
    out: Path,
    *,
    seeds_path: Path | None = None,
    prices_path: Path | None = None,
    similarity_sample: int | None = DEFAULT_SIMILARITY_SAMPLE,
    tokenizer: str = "rouge",
) -> dict[str, Path]:
    """Write the figures, ``report.html`` and ``report.json`` to ``out``; return their paths."""
    _check_out(out)
    _matplotlib()  # fail before the (possibly long) computation
    from ..seeds import DEFAULT_SEEDS, load_seed_tasks

    data = collect(run_dir)
    seeds = [s.instruction for s in load_seed_tasks(seeds_path or DEFAULT_SEEDS)]
    prices = load_prices(prices_path) if prices_path is not None else None
    stats = compute_stats(run_dir, prices, tasks=data.table).with_notes(*data.notes)
    figs = figure_data(data, seeds, similarity_sample=similarity_sample, tokenizer=tokenizer)
    images = {
        "similarity.png": plot_similarity(figs),
        "lengths.png": plot_lengths(figs),
        "verbs.png": plot_verbs(figs),
    }
    machine = {"stats": stats.to_json(), "figures": asdict(figs)}
    files = {
        **images,
        "report.html": render_html(stats, figs, images).encode("utf-8"),
        "report.json": (json.dumps(machine, indent=2) + "\n").encode("utf-8"),
    }
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            _write_atomic(out / name, content)
    except OSError as e:
        # Read-only or full destination: one line naming the output directory.
        raise ReportError(f"{out}: cannot write the report ({e.strerror or e})") from None
    return {name: out / name for name in files}


def _check_out(out: Path) -> None:
    """``--out`` must be a directory (or not exist yet) and none of a run directory's files."""
    refuse_run_file(out, what="the report")
    for name in REPORT_FILES:
        refuse_run_file(out / name, what="the report")
    if out.exists() and not out.is_dir():
        raise ReportError(f"--out {out}: not a directory (the report is several files)")


def _run(args: argparse.Namespace) -> int:
    sample = None if args.similarity_sample == 0 else args.similarity_sample
    written = build_report(
        Path(args.run_dir),
        Path(args.out),
        seeds_path=args.seeds,
        prices_path=args.prices,
        similarity_sample=sample,
        tokenizer=args.tokenizer,
    )
    for path in written.values():
        print(path)
    return 0


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``selfinstruct report``."""
    p = subparsers.add_parser(
        "report", help="figures and an HTML page describing a run (safe while it runs)"
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the files")
    p.add_argument("--seeds", type=Path, metavar="FILE", help="seed tasks (the initial pool)")
    p.add_argument("--prices", type=Path, metavar="FILE", help="TOML price table (see stats)")
    p.add_argument(
        "--similarity-sample",
        type=int,
        default=DEFAULT_SIMILARITY_SAMPLE,
        metavar="N",
        help="score at most N instructions for the overlap figure (0: all)",
    )
    p.add_argument("--tokenizer", choices=["rouge", "unicode"], default="rouge")
    p.set_defaults(func=_run)
