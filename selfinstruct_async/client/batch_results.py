"""What a collected batch's output and error files say about each of its requests.

:func:`sort_results` turns the lines read back (:func:`~.batch_files.read_result_lines`)
into each request's outcome for the checkpoint (answered, failed, never run), the answers
for the request ledger, and the requests to send again with the reason they have no
answer. Pure: the :class:`~.batch.BatchClient` commits, counts and resolves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple

from ..checkpoint import batches_table as table
from .batch_files import LineResult
from .protocol import Completion
from .recording import dump_completion


class Sorted(NamedTuple):
    """A collected batch's requests: what to commit, and what to do with each after."""

    outcomes: list[tuple[str, str, bool]]  # (key, outcome, a stage waits for it)
    ledger: list[tuple[str, str, str]]  # (key, stage, completion) of the answers
    answered: list[tuple[table.RequestRow, Completion]]
    again: list[tuple[table.RequestRow, str]]  # (request, why it has no answer)

    def count(self, outcome: str) -> int:
        return sum(1 for _, found, _ in self.outcomes if found == outcome)


def sort_results(
    requests: list[table.RequestRow],
    results: Mapping[str, LineResult],
    waiting: Callable[[str], bool],
) -> Sorted:
    """Each request answered (into the ledger) or to be asked again; ``waiting(key)`` says
    whether a stage of this session waits for the answer."""
    sorted_ = Sorted([], [], [], [])
    for row in requests:
        found = results.get(row.key)
        if found is not None and found.completion is not None:
            sorted_.outcomes.append((row.key, table.ANSWERED, waiting(row.key)))
            sorted_.ledger.append((row.key, row.stage, dump_completion(found.completion)))
            sorted_.answered.append((row, found.completion))
        else:
            not_run = found is None or found.not_run
            problem = found.problem if found is not None else "not in the output file"
            outcome = table.UNFINISHED if not_run else table.FAILED
            sorted_.outcomes.append((row.key, outcome, False))
            sorted_.again.append((row, problem))
    return sorted_
