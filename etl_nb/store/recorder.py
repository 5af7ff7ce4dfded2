"""Where a pipeline's step results go: a run of its own in the store, or the outer run it is part of.

``etl-nb run`` opens one run in the store before the notebook's kernel
starts and names it in ``ETL_NB_RUN_ID`` (``outer_run_id`` is the one place
that reads it). A ``Pipeline.run`` in that kernel is part of that run: its
steps are added to it, and ``etl-nb run`` closes it. Anywhere else a
``Pipeline.run`` is a run of its own, opened and closed here.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from etl_nb.results import RunStatus, StepResult, run_status

if TYPE_CHECKING:  # a recorder is given its store: this module imports no SQLAlchemy
    from etl_nb.store.runs import RunStore

# Set by `etl-nb run` for the kernel: the recorded run that steps belong to.
RUN_ID_ENV = "ETL_NB_RUN_ID"


def new_run_id() -> str:
    """A new run id: sortable by time, unique without coordination."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def outer_run_id() -> str | None:
    """The recorded run (``etl-nb run``) this process is part of, or None."""
    return os.environ.get(RUN_ID_ENV) or None


class RunRecorder:
    """Records a pipeline's step results into one run of the store.

    Made with ``start`` (a run of its own, unless inside an outer recorded
    run) or ``outer`` (the outer run only). ``own`` says whether this recorder
    opened the run and so closes it.
    """

    def __init__(self, store: RunStore, run_id: str, *, own: bool) -> None:
        self.store = store
        self.run_id = run_id
        self.own = own

    @classmethod
    def start(
        cls,
        store: RunStore,
        pipeline: str,
        params: Mapping[str, Any],
        *,
        run_id: str | None = None,
        notebook: str | None = None,
        trigger: str = "manual",
    ) -> RunRecorder:
        """Open a run of ``pipeline`` with ``params``; join the outer run instead, if there is one.

        An explicit ``run_id`` is always a run of its own.
        """
        outer = outer_run_id() if run_id is None else None
        if outer is not None:
            return cls(store, outer, own=False)
        recorder = cls(store, run_id or new_run_id(), own=True)
        store.start_run(recorder.run_id, pipeline, dict(params), notebook=notebook, trigger=trigger)
        return recorder

    @classmethod
    def outer(cls, store: Callable[[], RunStore]) -> RunRecorder | None:
        """The outer recorded run, if this process is part of one (``store`` is called only then)."""
        run_id = outer_run_id()
        return None if run_id is None else cls(store(), run_id, own=False)

    def record(self, steps: Iterable[StepResult]) -> None:
        """Add steps that have finished to the run (a step recorded again replaces its record)."""
        self.store.record_steps(self.run_id, list(steps))

    def finish(self, steps: Iterable[StepResult], *, error: str | None = None) -> RunStatus:
        """The run's part is over: record ``steps``, close the run if it is ours; its status."""
        steps = list(steps)
        status = run_status(steps, failed=error is not None)
        if self.own:
            self.store.finish_run(self.run_id, status, steps, error=error)
        else:
            self.record(steps)
        return status
