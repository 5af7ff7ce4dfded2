"""What a run did: one ``StepResult`` per step, from the engine through the API to the run store.

The runner fills a ``StepResult`` as each step goes, ``Pipeline.run`` hands
the same objects back in its ``RunResult``, and the store records and reads
them. ``run_status`` is the one rule for a run's status.

This module imports nothing else from etl_nb, so every layer can use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

StepStatus = Literal["success", "failed", "skipped", "warned"]
RunStatus = Literal["success", "failed"]
# The statuses of a step that ran to its end (a warned step ran; its warning is in ``error``).
RAN: tuple[StepStatus, ...] = ("success", "warned")


@dataclass
class StepResult:
    """How one step went.

    ``step`` is its id (``orders``, ``check:orders``, ``load:orders:lake:out.parquet``),
    ``kind`` its verb; ``rows`` is None when no rows were counted (a step fused
    into its reader, a check); ``detail`` holds warnings, check failures,
    retries (``attempts``) and merge counts.
    """

    step: str
    kind: str
    status: StepStatus
    rows: int | None = None
    seconds: float = 0.0
    error: str | None = None
    detail: dict[str, Any] | None = None

    @property
    def ran(self) -> bool:
        """Whether the step ran to its end (``success`` or ``warned``)."""
        return self.status in RAN

    @property
    def why(self) -> str | None:
        """The cache's word on the step, when the run used it: ``reused (unchanged since run R)``,
        ``code changed``, ``skipped (input and target unchanged since run R)`` (``docs/cache.md``)."""
        detail = self.detail or {}
        reason, decision = detail.get("reason"), detail.get("decision")
        if not reason:
            return None
        return str(reason) if decision == "ran" else f"{decision} ({reason})"


def load_summary(detail: dict[str, Any] | None) -> str | None:
    """A load's counts as one line (``would insert 3, update 2 (amount 2), leave 5 unchanged``).

    None when ``detail`` holds no counts. Previews, ``etl-nb show`` and the
    magics print this one sentence.
    """
    detail = detail or {}
    summary = _counts_summary(detail)
    added = detail.get("columns_added")
    if added:
        verb = "would add" if detail.get("dry_run") else "added"
        note = f"{verb} column{'s' if len(added) > 1 else ''} {', '.join(added)} to the target"
        summary = f"{summary}; {note}" if summary else note
    return summary


def _counts_summary(detail: dict[str, Any]) -> str | None:
    dry = bool(detail.get("dry_run"))
    if "inserted" in detail:
        changed = detail.get("changed_columns") or {}
        columns = ", ".join(f"{c} {n:,}" for c, n in list(changed.items())[:5])
        verbs = ("would insert", "update", "leave") if dry else ("inserted", "updated", "left")
        return (
            f"{verbs[0]} {detail['inserted']:,}, {verbs[1]} {detail['updated']:,}"
            + (f" ({columns})" if columns else "")
            + f", {verbs[2]} {detail['unchanged']:,} unchanged"
        )
    if "rows_added" in detail:
        return f"{'would add' if dry else 'added'} {detail['rows_added']:,} rows"
    if "rows_after" in detail:
        verb = "would replace" if dry else "replaced"
        return f"{verb} {detail.get('rows_before', 0):,} rows with {detail['rows_after']:,}"
    if dry and "rows" in detail:
        return f"would write {detail['rows']:,} rows"
    return None


def run_status(steps: Iterable[StepResult], *, failed: bool = False) -> RunStatus:
    """A run's status: ``failed`` if it ended with an error (``failed``) or any step failed."""
    if failed or any(step.status == "failed" for step in steps):
        return "failed"
    return "success"


@dataclass
class RunResult:
    """What ``Pipeline.run`` did.

    ``status`` is ``"success"`` or ``"failed"``; ``steps`` maps each step id to
    its ``StepResult`` in run order; ``error`` is the first failure's message.
    """

    run_id: str
    pipeline: str
    status: RunStatus
    steps: dict[str, StepResult] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None
    exception: BaseException | None = field(default=None, repr=False)

    @property
    def rows(self) -> int:
        """Rows written by all loads (a dry-run load writes none)."""
        return sum(
            s.rows or 0
            for s in self.steps.values()
            if s.kind == "load" and not (s.detail or {}).get("dry_run")
        )

    def raise_for_status(self) -> RunResult:
        """Raise the run's error if it failed; return the result otherwise."""
        if self.exception is not None:
            raise self.exception
        return self

    def __str__(self) -> str:
        lines = [f"run {self.run_id} of '{self.pipeline}': {self.status} in {self.seconds:.2f}s"]
        for name, step in self.steps.items():
            rows = "" if step.rows is None else f"{step.rows:>10,} rows"
            why = f"  {step.why}" if step.why else ""
            lines.append(f"  {step.status:<8} {name:<40} {rows:>15} {step.seconds:8.3f}s{why}")
        notes = {name: load_summary(step.detail) for name, step in self.steps.items()}
        lines += [f"  {name}: {note}" for name, note in notes.items() if note]
        if self.error:
            lines.append(self.error)
        return "\n".join(lines)
