"""Reading seed task files in the paper's schema, with errors that name file, line and field."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import SeedFileError
from .records import Instance, SeedTask

# Seed sets shipped in the wheel (the ``selfinstruct_seeds`` package), by the name a user
# may give instead of a path: ``--seeds zh``.
BUILTIN_SEEDS = {"en": "seed_tasks.jsonl", "zh": "zh/seed_tasks.jsonl"}


def builtin_seed_path(name: str) -> Path:
    """The file of a shipped seed set; pip installs wheels unpacked, so it is a real path."""
    return Path(str(resources.files("selfinstruct_seeds").joinpath(BUILTIN_SEEDS[name])))


DEFAULT_SEEDS = builtin_seed_path("en")


def resolve_seeds(value: str) -> Path:
    """``run.seeds`` as a file: empty means the default set, a shipped set's name that set.

    An existing file wins over a shipped set of the same name, so a user's own ``zh`` file
    in the working directory is never shadowed.
    """
    if not value:
        return DEFAULT_SEEDS
    if value in BUILTIN_SEEDS and not Path(value).exists():
        return builtin_seed_path(value)
    return Path(value)


def _require(
    obj: dict[str, Any], key: str, kind: type, path: str, line: int, where: str = ""
) -> Any:
    name = f"{where}{key}"
    if key not in obj:
        raise SeedFileError(path, line, name, "missing")
    value = obj[key]
    if kind is str and not isinstance(value, str):
        raise SeedFileError(path, line, name, f"expected a string, got {type(value).__name__}")
    if kind is bool and not isinstance(value, bool):
        raise SeedFileError(path, line, name, f"expected true or false, got {value!r}")
    if kind is list and not isinstance(value, list):
        raise SeedFileError(path, line, name, f"expected a list, got {type(value).__name__}")
    return value


def parse_seed_line(obj: Any, path: str, line: int) -> SeedTask:
    """Validate one decoded JSON line as a seed task."""
    if not isinstance(obj, dict):
        raise SeedFileError(path, line, None, f"expected a JSON object, got {type(obj).__name__}")
    task_id = _require(obj, "id", str, path, line)
    instruction = _require(obj, "instruction", str, path, line)
    if not instruction.strip():
        raise SeedFileError(path, line, "instruction", "is empty")
    raw_instances = _require(obj, "instances", list, path, line)
    if not raw_instances:
        raise SeedFileError(path, line, "instances", "needs at least one instance")
    instances = []
    for i, raw in enumerate(raw_instances):
        where = f"instances[{i}]."
        if not isinstance(raw, dict):
            raise SeedFileError(path, line, f"instances[{i}]", "expected an object")
        instances.append(
            Instance(
                input=_require(raw, "input", str, path, line, where),
                output=_require(raw, "output", str, path, line, where),
            )
        )
    name = obj.get("name", task_id)
    if not isinstance(name, str):
        raise SeedFileError(path, line, "name", f"expected a string, got {type(name).__name__}")
    return SeedTask(
        id=task_id,
        name=name,
        instruction=instruction.strip(),
        instances=tuple(instances),
        is_classification=_require(obj, "is_classification", bool, path, line),
    )


def load_seed_tasks(path: Path) -> list[SeedTask]:
    """Read a JSONL seed file; any defect raises :class:`SeedFileError` before work starts."""
    where = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SeedFileError(where, None, None, "seed file not found") from None
    except IsADirectoryError:
        raise SeedFileError(where, None, None, "is a directory, not a seed file") from None
    tasks: list[SeedTask] = []
    seen: dict[str, int] = {}
    for number, raw_line in enumerate(data.splitlines(), start=1):
        try:
            text = raw_line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise SeedFileError(where, number, None, f"not UTF-8 ({e.reason})") from None
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise SeedFileError(
                where, number, None, f"invalid JSON: {e.msg} (column {e.colno})"
            ) from None
        task = parse_seed_line(obj, where, number)
        if task.id in seen:
            raise SeedFileError(
                where, number, "id", f"duplicate id {task.id!r} (first on line {seen[task.id]})"
            )
        seen[task.id] = number
        tasks.append(task)
    if not tasks:
        raise SeedFileError(where, None, None, "contains no seed tasks")
    return tasks
