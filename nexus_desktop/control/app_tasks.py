"""The app's scheduled tasks: the loop's four built-ins and every module's own tasks.

Built-ins (cadence, time limit, misfire grace), chosen so that the loop keeps itself up to date
without the user noticing it:

- ``daily-cycle`` (``daily 04:00``, 3 h 30 min, no grace): the training check, the eval sweep and
  the impact assessment in order, then the daily report.  A night the app was closed runs once
  at the next start (coalesced, never one per missed night).
- ``training-check`` (``every 30m``, 2 h, 5 min grace): a zoo model past its threshold is trained,
  benchmarked and gated as soon as the data is there; it waits for the job and the gate's verdict
  (a CPU run of the router takes ~5 min, its benchmark ~2 min).  A check still waiting when the
  next is due makes that one ``skipped``.  Missed checks are not caught up: the next comes soon.
- ``eval-sweep`` (``daily 16:00``, 1 h, 1 h grace): the daily cycle re-checks adapters at 04:00;
  this second check twelve hours later halves how long a regressed adapter stays active.
- ``impact-assessment`` (``daily 12:00``, 10 min, 1 h grace): cheap queries; a midday run keeps
  the before/after figures on the dashboards fresh between reports.
- ``module-coevolution`` (``daily 03:00``, 1 h, 1 h grace): one co-evolution step of the module
  builder (``coevolve/step.py``); it skips, saying why, unless Settings → App turn it on.  It runs
  on the app's event loop: its builds use the app's modules service and wait on threads and
  sandboxed processes, never on the loop.

Each built-in runs in a thread of its own (``runners.in_thread``): a benchmark or a database
wait never holds up the app's event loop, and a run that overstays is abandoned.

Module tasks (``register_scheduled_tasks``) run in the module's own process
(``runners.in_module``) every ``interval_seconds``, with a time limit of that interval clamped
to 10 s - 5 min, and are re-synced whenever the modules change (start, stop, reload).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nexus_desktop.control.ledger import DAILY, EVAL_SWEEP, IMPACT, TASK_NAMES, TRAINING_CHECK
from nexus_desktop.control.loop import DAILY_TIMEOUT, STEP_TIMEOUTS, Loop
from nexus_desktop.control.runners import Runner, in_module, in_thread
from nexus_desktop.control.scheduler import Scheduler, Task
from nexus_desktop.modules.runtime.protocol import RemoteScheduledTask
from nexus_desktop.modules.runtime.supervisor import ModuleSupervisor

log = logging.getLogger(__name__)

MODULE_TIMEOUT_RANGE = (10.0, 300.0)
COEVOLUTION = "coevolution"


@dataclass(frozen=True)
class Builtin:
    name: str
    kind: str
    cadence: str
    timeout_seconds: float
    misfire_grace_seconds: float | None
    description: str


BUILTINS: tuple[Builtin, ...] = (
    Builtin(
        TASK_NAMES[DAILY],
        DAILY,
        "daily 04:00",
        DAILY_TIMEOUT,
        None,
        "Training check, eval sweep and impact assessment in order, then the daily report.",
    ),
    Builtin(
        TASK_NAMES[TRAINING_CHECK],
        TRAINING_CHECK,
        "every 30m",
        STEP_TIMEOUTS[TRAINING_CHECK],
        300.0,
        "Train, benchmark and gate every zoo model past its threshold.",
    ),
    Builtin(
        TASK_NAMES[EVAL_SWEEP],
        EVAL_SWEEP,
        "daily 16:00",
        STEP_TIMEOUTS[EVAL_SWEEP],
        3600.0,
        "Re-benchmark active adapters; roll back one that now falls below its gate.",
    ),
    Builtin(
        TASK_NAMES[IMPACT],
        IMPACT,
        "daily 12:00",
        STEP_TIMEOUTS[IMPACT],
        3600.0,
        "Gate numbers and live signals before and since each promotion.",
    ),
    Builtin(
        "module-coevolution",
        COEVOLUTION,
        "daily 03:00",
        3600.0,
        3600.0,
        "Build harder module requests aimed at past failures; keep templates that pass more "
        "(Settings → App).",
    ),
)
BUILTIN_NAMES = frozenset(builtin.name for builtin in BUILTINS)


def builtin_tasks(loop: Loop, coevolution: Runner | None = None) -> list[Task]:
    """The built-ins; ``coevolution`` (``Coevolution.run_task``) runs the co-evolution task, which
    is ``not_implemented`` without it."""
    methods: dict[str, Callable[[float], Awaitable[str]]] = {
        DAILY: loop.daily_cycle,
        TRAINING_CHECK: loop.training_check,
        EVAL_SWEEP: loop.eval_sweep,
        IMPACT: loop.impact_assessment,
    }
    return [
        Task(
            name=builtin.name,
            cadence=builtin.cadence,
            run=coevolution
            if builtin.kind == COEVOLUTION
            else _in_own_thread(methods[builtin.kind], builtin.name),
            description=builtin.description,
            owner="nexus",
            timeout_seconds=builtin.timeout_seconds,
            misfire_grace_seconds=builtin.misfire_grace_seconds,
            heavy=builtin.kind != IMPACT,  # training and benchmarks; the impact queries are cheap
        )
        for builtin in BUILTINS
    ]


def _in_own_thread(method: Callable[[float], Awaitable[str]], name: str) -> Runner:
    """``in_thread`` hands its function no arguments; the loop's methods want their time limit."""

    async def run(timeout: float) -> str:
        return await in_thread(lambda: method(timeout), name=name)(timeout)

    return run


def module_task_name(spec: RemoteScheduledTask) -> str:
    """Modules usually name tasks ``module.task``; any other name gets the prefix, so two modules
    (or a module and a built-in) can never share one."""
    prefix = f"{spec.module}."
    return spec.name if spec.name.startswith(prefix) else prefix + spec.name


def module_task(supervisor: ModuleSupervisor, spec: RemoteScheduledTask) -> Task | None:
    interval = int(spec.interval_seconds)
    if interval < 1:
        log.warning("Module %s: task %s has no usable interval (%r)", spec.module, spec.name, interval)
        return None
    low, high = MODULE_TIMEOUT_RANGE
    return Task(
        name=module_task_name(spec),
        cadence=f"every {interval}s",
        run=in_module(supervisor, spec.module, spec.name),
        description=spec.description,
        owner=spec.module,
        timeout_seconds=min(high, max(low, float(interval))),
        misfire_grace_seconds=min(300.0, float(interval)),
    )


class AppTasks:
    """Keeps the scheduler's task list in step with the built-ins and the running modules."""

    def __init__(
        self,
        scheduler: Scheduler,
        loop: Loop,
        supervisor: ModuleSupervisor | None,
        coevolution: Runner | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.loop = loop
        self.coevolution = coevolution
        self.supervisor = supervisor
        self._modules: dict[str, RemoteScheduledTask] = {}

    def add_builtins(self) -> None:
        for task in builtin_tasks(self.loop, self.coevolution):
            self.scheduler.add(task)

    def sync_modules(self) -> None:
        """Add the tasks modules registered, drop those of modules that stopped.  Cheap and
        non-blocking (the supervisor's list is in memory; the scheduler writes on its thread):
        safe to call from the modules' change listener on the event loop."""
        if self.supervisor is None:
            return
        wanted = {module_task_name(spec): spec for spec in self.supervisor.scheduled_tasks()}
        for name in set(self._modules) - set(wanted):
            self.scheduler.remove(name)
            del self._modules[name]
        for name, spec in wanted.items():
            if self._modules.get(name) == spec:
                continue
            task = module_task(self.supervisor, spec)
            if task is None:
                continue
            self.scheduler.add(task)
            self._modules[name] = spec

    def module_task_names(self) -> list[str]:
        return sorted(self._modules)
