"""The worked examples shown in instance prompts, and where a run takes them from.

The paper's instance prompts are fixed templates whose tasks show several instances each:
an input for each of two or three class labels (output-first), several input/output pairs
(input-first). Seed tasks carry one instance each, so prompts built from them show one
label per classification task and never a second example. ``instances.demonstrations_from``
therefore chooses between:

- ``"builtin"`` (default): the project's own demonstrations, shipped in
  ``selfinstruct_async/data/instance_demonstrations.jsonl``;
- ``"seeds"``: the run's seed tasks, sampled per task (what the project did before);
- any other value: the path of a JSONL file in the seed format.

A fixed source (builtin or a file) gives every prompt of a kind the same demonstrations,
the first ``instances.demonstrations`` tasks of that kind in file order, so every prompt
shares one prefix: vLLM's and llama.cpp's prefix caches reuse it. Hosted providers cache
only prefixes of 1,024 tokens or more, and these prompts (about 300 tokens output-first,
450 input-first) are not lengthened to get there: at a cached price of half the prompt
price, 1,024 cached tokens cost more than the whole prompt does now. That pays only below
about 28% (output-first) and 43% (input-first) of the prompt price. The source is read
and checked once per run, before the run directory is touched.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .config import InstancesConfig
from .errors import ConfigError
from .prompts import select_instance_demonstrations
from .records import SeedTask
from .seeds import load_seed_tasks

BUILTIN = "builtin"
SEEDS = "seeds"
KEY = "instances.demonstrations_from"


def builtin_demonstrations_path() -> Path:
    """The shipped demonstrations; pip installs wheels unpacked, so it is a real path."""
    files = resources.files("selfinstruct_async").joinpath("data/instance_demonstrations.jsonl")
    return Path(str(files))


def _usable(task: SeedTask) -> bool:
    # A task whose every output is empty would teach the model to answer nothing.
    return any(instance.output.strip() for instance in task.instances)


@dataclass(frozen=True)
class InstanceDemonstrations:
    """The demonstration tasks of one run, by kind, and how prompts pick from them.

    ``fixed``: every prompt of a kind shows ``classification`` or ``generation`` as they
    are (already cut to ``k``); otherwise each prompt samples ``k`` of them with the
    task's own random generator.
    """

    source: str
    classification: tuple[SeedTask, ...]
    generation: tuple[SeedTask, ...]
    k: int
    fixed: bool

    def pick(self, is_classification: bool, rng: random.Random) -> list[SeedTask]:
        """The demonstrations for one prompt of the given kind."""
        pool = self.classification if is_classification else self.generation
        if self.fixed:
            return list(pool)
        return select_instance_demonstrations(pool, is_classification, rng, self.k)


def load_instance_demonstrations(
    config: InstancesConfig, seeds: Sequence[SeedTask], seeds_file: Path
) -> InstanceDemonstrations:
    """Read ``instances.demonstrations_from`` and check it holds both kinds of task.

    A file that cannot be read as seed tasks raises :class:`~.errors.SeedFileError`
    (file, line, field); a missing file or a missing kind raises :class:`ConfigError`
    naming the setting.
    """
    value = config.demonstrations_from
    k = config.demonstrations
    if value == SEEDS:
        tasks, where, fixed = list(seeds), f"the seeds in {seeds_file}", False
    else:
        path = builtin_demonstrations_path() if value == BUILTIN else Path(value)
        if not path.is_file():
            raise ConfigError(
                f"{KEY}: {value!r} is not a file (expected {BUILTIN!r}, {SEEDS!r} or the "
                "path of a JSONL file in the seed format)"
            )
        tasks, where, fixed = load_seed_tasks(path), str(path), True
    usable = [task for task in tasks if _usable(task)]
    by_kind = {
        kind: [task for task in usable if task.is_classification == kind] for kind in (True, False)
    }
    if k > 0:
        # Either kind of task can reach stage 3 (the identification stage decides which),
        # so a source must be able to demonstrate both.
        for kind, name in ((True, "classification"), (False, "non-classification")):
            if not by_kind[kind]:
                raise ConfigError(
                    f"{KEY}: {where} holds no {name} task with an output; instance prompts "
                    f"for {name} tasks need at least one demonstration"
                )
    if fixed:
        by_kind = {kind: found[:k] for kind, found in by_kind.items()}
    return InstanceDemonstrations(
        source=value,
        classification=tuple(by_kind[True]),
        generation=tuple(by_kind[False]),
        k=k,
        fixed=fixed,
    )
