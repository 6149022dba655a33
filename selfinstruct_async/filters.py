"""What a filter is, and the chain that runs filters in order and names the one that said no.

A filter is a class registered by a plugin hook. The pipeline instantiates it once per run
with its validated ``[filters.<name>]`` settings and calls ``check`` for every candidate.
``check`` returns ``None`` to let the candidate through or a :class:`Rejection` with a
reason; it may be a coroutine function (for filters that call a service) and may declare
itself ``cpu_bound`` so that it runs on a worker thread instead of the event loop once its
checks take long (:data:`OFFLOAD_AFTER`): a check of a few microseconds costs less than the
hop to a thread and back, so those run on the loop.

Instance filters run phase by phase, as the original's ``prepare_for_finetuning`` does:
each filter, in ``order``, judges every instance that the filters before it let through,
and its :class:`InstanceContext` holds only those. So "same input, different outputs"
looks at the survivors of the validity filters, never at an instance already thrown out.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal, Protocol, TypeVar, runtime_checkable

import anyio.to_thread

from .errors import FilterError, SelfInstructError
from .records import Instance, Rejection

OnError = Literal["reject", "stop"]
Verdict = Rejection | None
#: CPU seconds a ``cpu_bound`` check may take on average (over its recent calls) and still
#: run on the event loop; longer ones go to a worker thread. A hop costs about 50 us of CPU
#: and holds nothing else up, so only checks far longer than that are worth it.
OFFLOAD_AFTER = 0.002
_AVERAGE_OVER = 32  # calls, roughly: the weight of one in the moving average


@dataclass(frozen=True, slots=True)
class InstanceContext:
    """The task an instance belongs to, as one filter sees it.

    ``instances`` are the task's instances that passed every filter ordered before this
    one (all parsed instances for the first filter), in the order they were generated;
    ``index`` is the position of the instance being checked among them.
    """

    instruction: str
    is_classification: bool
    instances: tuple[Instance, ...]
    index: int = 0

    @property
    def earlier(self) -> tuple[Instance, ...]:
        """The surviving instances generated before the one being checked."""
        return self.instances[: self.index]


@dataclass(frozen=True, slots=True)
class InstanceVerdicts:
    """What the instance filters decided about one task's instances.

    ``kept`` are the survivors in generation order; ``rejected`` holds each other instance
    with the rejection of the filter that dropped it, in generation order too.
    """

    kept: tuple[Instance, ...]
    rejected: tuple[tuple[Instance, Rejection], ...]


@dataclass(frozen=True, slots=True)
class _Pending:
    """A check still to run off the fast path, or the awaitable a plain check returned."""

    check: Callable[..., Any]
    args: tuple[Any, ...]
    awaitable: Awaitable[Any] | None = None


@runtime_checkable
class InstructionFilter(Protocol):
    """Decides whether a generated instruction may join the pool."""

    name: ClassVar[str]
    order: ClassVar[int]

    def check(self, instruction: str) -> Verdict | Awaitable[Verdict]: ...


@runtime_checkable
class InstanceFilter(Protocol):
    """Decides whether one generated instance of a task is kept."""

    name: ClassVar[str]
    order: ClassVar[int]

    def check(self, instance: Instance, task: InstanceContext) -> Verdict | Awaitable[Verdict]: ...


class BaseFilter:
    """Defaults for filter classes; subclassing it is optional.

    ``Settings`` is a dataclass describing ``[filters.<name>]``; ``None`` means the filter
    takes no settings. ``order`` sorts filters ascending: put cheap filters first.
    ``remember`` is told about every instruction that is in the pool (seeds, resumed and
    newly accepted ones), which is how stateful filters such as similarity build state.
    """

    name: ClassVar[str] = ""
    order: ClassVar[int] = 100
    cpu_bound: ClassVar[bool] = False
    Settings: ClassVar[type | None] = None

    def __init__(self, settings: Any = None) -> None:
        self.settings = settings

    def remember(self, instruction: str) -> None:
        """Take note of an instruction that entered the pool."""


F = TypeVar("F")
log = logging.getLogger("selfinstruct_async")


def _sort(filters: Sequence[F]) -> list[F]:
    return sorted(filters, key=lambda f: (getattr(f, "order", 100), getattr(f, "name", "")))


class FilterChain:
    """Runs filters in ``order``; the first rejection wins and is labelled with its filter."""

    def __init__(
        self,
        instruction_filters: Sequence[InstructionFilter] = (),
        instance_filters: Sequence[InstanceFilter] = (),
        on_error: OnError = "reject",
    ) -> None:
        self.instruction_filters = _sort(instruction_filters)
        self.instance_filters = _sort(instance_filters)
        self.on_error = on_error
        # Per filter (by id): how its check is called, and a moving average of the seconds a
        # cpu_bound check takes, which says whether the next one goes to a thread.
        self._kinds: dict[int, str] = {}
        self._seconds: dict[int, float] = {}

    async def check_instruction(self, instruction: str) -> Rejection | None:
        for f in self.instruction_filters:
            verdict = self._now(f, f.check, instruction)
            if isinstance(verdict, _Pending):
                verdict = await self._resolve(f, verdict)
            if verdict is not None:
                return verdict
        return None

    async def check_instances(
        self, instruction: str, is_classification: bool, instances: Sequence[Instance]
    ) -> InstanceVerdicts:
        """Run the instance filters over one task's instances, one filter at a time.

        Each filter sees only the instances the filters before it let through; an instance
        is rejected by the first filter that says no, and later filters never see it.
        """
        survivors = list(enumerate(instances))
        dropped: list[tuple[int, Instance, Rejection]] = []
        contexts: list[InstanceContext] = []
        for f in self.instance_filters:
            if not survivors:
                break
            # The contexts are values: while no instance is dropped, the next filter gets
            # the same ones (building them was most of the chain's own cost).
            if len(contexts) != len(survivors):
                seen = tuple(instance for _, instance in survivors)
                contexts = [
                    InstanceContext(instruction, is_classification, seen, position)
                    for position in range(len(seen))
                ]
            passed: list[tuple[int, Instance]] = []
            for (generated, instance), context in zip(survivors, contexts, strict=True):
                verdict = self._now(f, f.check, instance, context)
                if verdict is None:
                    passed.append((generated, instance))
                    continue
                if isinstance(verdict, _Pending):
                    verdict = await self._resolve(f, verdict)
                if verdict is None:
                    passed.append((generated, instance))
                else:
                    dropped.append((generated, instance, verdict))
            survivors = passed
        dropped.sort(key=lambda item: item[0])
        return InstanceVerdicts(
            kept=tuple(instance for _, instance in survivors),
            rejected=tuple((instance, rejection) for _, instance, rejection in dropped),
        )

    async def check_instance(self, instance: Instance, task: InstanceContext) -> Rejection | None:
        """Every instance filter on one instance with one fixed ``task`` context.

        For trying filters on a single instance; the pipeline uses :meth:`check_instances`,
        which narrows the context to the survivors filter by filter.
        """
        for f in self.instance_filters:
            verdict = await self._run(f, f.check, instance, task)
            if verdict is not None:
                return verdict
        return None

    def remember(self, instruction: str) -> None:
        for f in self.instruction_filters:
            remember = getattr(f, "remember", None)
            if remember is not None:
                remember(instruction)

    def _kind(self, f: object, check: Callable[..., Any]) -> str:
        kind = self._kinds.get(id(f))
        if kind is None:
            if inspect.iscoroutinefunction(check):
                kind = "async"
            elif getattr(f, "cpu_bound", False):
                kind = "cpu"
            else:
                kind = "sync"
            self._kinds[id(f)] = kind
        return kind

    def _timed(self, f: object, check: Callable[..., Any], *args: Any) -> Any:
        """``check(*args)``, adding the CPU seconds it took to ``f``'s moving average.

        CPU time of this thread, not wall time: on a worker thread a check waits for the
        GIL while the loop runs (up to the 5 ms switch interval per wait), and counting
        those waits kept a check that one slow call had sent to a thread there for good.
        """
        started = time.thread_time()
        try:
            return check(*args)
        finally:
            took = time.thread_time() - started
            average = self._seconds.get(id(f), 0.0)
            self._seconds[id(f)] = average + (took - average) / _AVERAGE_OVER

    def _now(self, f: object, check: Callable[..., Any], *args: Any) -> Rejection | _Pending | None:
        """The verdict of a check that runs on the loop, or what is left to await.

        Most filters are plain functions of a few microseconds: calling them here, without
        a coroutine and an ``await`` each, halves the chain's own cost. Async checks and
        checks for a worker thread come back as a :class:`_Pending` call for
        :meth:`_resolve`; so does the awaitable a plain check returned (awaited, never
        called again).
        """
        kind = self._kinds.get(id(f)) or self._kind(f, check)
        if kind == "async" or (kind == "cpu" and self._seconds.get(id(f), 0.0) > OFFLOAD_AFTER):
            return _Pending(check, args)
        try:
            verdict = check(*args) if kind == "sync" else self._timed(f, check, *args)
        except SelfInstructError:
            raise  # deliberate errors (misconfiguration, say) are not a plugin's bug
        except Exception as error:  # a plugin's bug must not accept the candidate
            return self._failed(f, error)
        if verdict is None:  # the usual answer: nothing to await or label
            return None
        if inspect.isawaitable(verdict):
            return _Pending(check, args, verdict)
        return self._settled(f, verdict)

    async def _resolve(self, f: object, pending: _Pending) -> Rejection | None:
        """The verdict of what :meth:`_now` left to await, with :meth:`_run`'s handling."""
        if pending.awaitable is None:
            return await self._run(f, pending.check, *pending.args)
        try:
            verdict = await pending.awaitable
        except SelfInstructError:
            raise
        except Exception as error:
            return self._failed(f, error)
        return self._settled(f, verdict)

    def _failed(self, f: object, error: Exception) -> Rejection:
        name = getattr(f, "name", type(f).__name__)
        log.warning("filter %r raised %s: %s", name, type(error).__name__, error)
        if self.on_error == "stop":
            raise FilterError(name, error) from error
        return Rejection(reason=f"filter raised {type(error).__name__}: {error}", filter=name)

    async def _run(self, f: object, check: Callable[..., Any], *args: Any) -> Rejection | None:
        try:
            kind = self._kind(f, check)
            if kind == "async":
                verdict = await check(*args)
            elif kind == "cpu" and self._seconds.get(id(f), 0.0) > OFFLOAD_AFTER:
                verdict = await anyio.to_thread.run_sync(self._timed, f, check, *args)
            else:
                verdict = self._timed(f, check, *args) if kind == "cpu" else check(*args)
                if verdict is not None and inspect.isawaitable(verdict):
                    verdict = await verdict
        except SelfInstructError:
            raise  # deliberate errors (misconfiguration, say) are not a plugin's bug
        except Exception as error:  # a plugin's bug must not accept the candidate
            return self._failed(f, error)
        return self._settled(f, verdict)

    def _settled(self, f: object, verdict: object) -> Rejection | None:
        """``verdict`` checked and labelled with the filter's name."""
        if verdict is None:
            return None
        name = getattr(f, "name", type(f).__name__)
        if not isinstance(verdict, Rejection):
            raise FilterError(
                name, TypeError(f"check() returned {verdict!r}, not Rejection or None")
            )
        return replace(verdict, filter=name)
