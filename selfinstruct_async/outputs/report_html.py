"""``report.html``: one self-contained page with a run's tables and figures.

The figures are embedded as base64 ``data:`` URIs, so the page is a single file that can
be mailed or archived. Every number comes from the typed :class:`~.run_stats.RunStats`
and the report's :class:`~.report.Figures`; each section is drawn by its own function.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .run_stats import Acceptance, DatasetStats, RunStats, UsageReport
from .stats import fmt_money, fmt_number, fmt_share

if TYPE_CHECKING:
    from .report import Figures

_STYLE = (
    "<style>body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
    "padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
    "img{max-width:100%}</style></head><body>"
)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f"<p><img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'></p>"


def _head(run_dir: str) -> list[str]:
    title = f"Self-Instruct report: {html.escape(run_dir)}"
    return [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{title}</title>",
        _STYLE,
        f"<h1>{title}</h1>",
    ]


def _dataset(d: DatasetStats) -> list[str]:
    rows = [
        ["# of instructions", fmt_number(d.instructions)],
        ["- # of classification instructions", fmt_number(d.classification)],
        ["- # of non-classification instructions", fmt_number(d.non_classification)],
        ["# of instances", fmt_number(d.instances)],
        ["- # of instances with empty input", fmt_number(d.instances_empty_input)],
        ["ave. instruction length (in words)", fmt_number(d.avg_instruction_words)],
        ["ave. non-empty input length (in words)", fmt_number(d.avg_nonempty_input_words)],
        ["ave. output length (in words)", fmt_number(d.avg_output_words)],
    ]
    return ["<h2>Dataset (Table 1 of the paper)</h2>", _table(["statistic", "value"], rows)]


def _acceptance(acc: Acceptance) -> list[str]:
    rows: list[list[Any]] = []
    for s in acc.levels:
        rows.append(
            [
                f"{s.level}s",
                fmt_number(s.received),
                fmt_number(s.decided),
                fmt_number(s.accepted),
                fmt_share(s.acceptance_rate),
            ]
        )
        for f in s.filters:
            rows.append(
                [
                    f"rejected by {f.name}",
                    "",
                    fmt_number(f.rejected),
                    "",
                    fmt_share(f.rejected_share),
                ]
            )
    headers = ["stage / filter", "received", "decided or rejected", "accepted", "rate"]
    clf = acc.classification
    return [
        "<h2>Acceptance by stage and filter</h2>",
        _table(headers, rows),
        f"<p>Classification answers: {clf.yes} yes, {clf.no} no, "
        f"{clf.unparseable} unparseable.</p>",
    ]


def _usage(usage: UsageReport) -> list[str]:
    total = usage.total
    if total is None:
        return []
    rows = [
        [
            stage,
            fmt_number(u.prompt_tokens),
            fmt_share(u.cached_share),
            fmt_number(u.completion_tokens),
            fmt_number(u.requests),
            fmt_number(u.batch_requests),
            fmt_number(u.retries),
            fmt_number(u.throttled),
            fmt_money(u.cost_usd),
        ]
        for stage, u in [*usage.stages, ("total", total)]
    ]
    headers = [
        "stage",
        "prompt tokens",
        "cached",
        "completion tokens",
        "requests",
        "batch",
        "retries",
        "throttled",
        "cost",
    ]
    per = usage.per_accepted_instruction
    cost = "" if per.cost_usd is None else f", ${per.cost_usd:,.4f}"
    return [
        "<h2>Tokens and cost</h2>",
        _table(headers, rows),
        f"<p>Per accepted instruction: {fmt_number(per.total_tokens)} tokens{cost}.</p>",
    ]


def _figures(figs: Figures, images: Mapping[str, bytes]) -> list[str]:
    v = figs.verbs
    verb_rows = [
        [vc.verb, fmt_number(vc.count), ", ".join(f"{o} ({n})" for o, n in vc.objects)]
        for vc in v.verbs
    ]
    return [
        "<h2>Overlap with the pool</h2>",
        f"<p>{figs.similarity_scored} instructions scored; mean ROUGE-L "
        f"{fmt_number(figs.similarity_mean, 3)}, "
        f"median {fmt_number(figs.similarity_median, 3)}.</p>",
        _img(images["similarity.png"], "ROUGE-L overlap distribution"),
        "<h2>Lengths</h2>",
        _img(images["lengths.png"], "length distributions"),
        "<h2>Leading verbs and their objects</h2>",
        f"<p>{v.with_verb} of {v.instructions} instructions start with a verb, "
        f"{v.with_object} with a direct object (heuristic, see the documentation).</p>",
        _table(["verb", "instructions", "top objects"], verb_rows),
        _img(images["verbs.png"], "leading verbs and objects"),
    ]


def render_html(stats: RunStats, figs: Figures, images: Mapping[str, bytes]) -> str:
    """A single page holding the tables and the figures (embedded, no external files)."""
    parts = [
        *_head(stats.run_dir),
        *_dataset(stats.dataset),
        *_acceptance(stats.acceptance),
        *_usage(stats.usage),
        *_figures(figs, images),
        *(f"<p><em>Note: {html.escape(note)}</em></p>" for note in stats.notes),
        "</body></html>\n",
    ]
    return "\n".join(parts)
