"""Step fingerprints and resumed runs in the run store: what the cache compares a step against.

Every recorded run writes one row per step: its fingerprint's digest and
parts, whether it ran or was reused and why, its status, and what a later
run needs to repeat it (a check's result, the state a load left its target
in). ``latest`` finds the last good row of each step; ``of_run`` the rows of
one run, for ``--resume``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select

from etl_nb._masking import redact
from etl_nb.results import RAN
from etl_nb.store.runs import RunStore, now
from etl_nb.store.schema import run_resumes, step_fingerprints


@dataclass(frozen=True)
class StepFingerprintRecord:
    """One step's fingerprint as a run kept it."""

    run_id: str
    step: str
    digest: str
    parts: dict[str, Any]
    decision: str
    reason: str | None
    status: str
    outcome: dict[str, Any] | None = None
    created_at: dt.datetime | None = None


class FingerprintStore:
    """The fingerprint rows of the run store ``store``."""

    def __init__(self, store: RunStore) -> None:
        self.engine = store.engine

    def record(self, pipeline: str, records: list[StepFingerprintRecord]) -> None:
        """Keep ``records`` (one run's steps; a step recorded again for that run replaces its row)."""
        if not records:
            return
        with self.engine.begin() as conn:
            for record in records:
                conn.execute(
                    step_fingerprints.delete().where(
                        step_fingerprints.c.run_id == record.run_id, step_fingerprints.c.step == record.step
                    )
                )
            conn.execute(
                insert(step_fingerprints),
                [
                    {
                        "run_id": r.run_id,
                        "step": r.step,
                        "pipeline": pipeline,
                        "digest": r.digest,
                        "parts": _redacted(r.parts),
                        "decision": r.decision,
                        "reason": redact(r.reason) if r.reason else None,
                        "status": r.status,
                        "outcome": _redacted(r.outcome) if r.outcome is not None else None,
                        "created_at": now(),
                    }
                    for r in records
                ],
            )

    def latest(self, pipeline: str) -> dict[str, StepFingerprintRecord]:
        """Each step's last row from a run where it went well (success or warned)."""
        query = (
            select(step_fingerprints)
            .where(step_fingerprints.c.pipeline == pipeline, step_fingerprints.c.status.in_(RAN))
            .order_by(step_fingerprints.c.created_at.desc())
        )
        found: dict[str, StepFingerprintRecord] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                found.setdefault(row.step, _record(row._mapping))
        return found

    def of_run(self, run_id: str) -> dict[str, StepFingerprintRecord]:
        """The rows of run ``run_id``, by step."""
        query = select(step_fingerprints).where(step_fingerprints.c.run_id == run_id)
        with self.engine.connect() as conn:
            return {row.step: _record(row._mapping) for row in conn.execute(query)}

    def record_resume(self, run_id: str, resumed_from: str) -> None:
        """Note that run ``run_id`` resumed run ``resumed_from``."""
        with self.engine.begin() as conn:
            conn.execute(run_resumes.delete().where(run_resumes.c.run_id == run_id))
            conn.execute(
                insert(run_resumes).values(run_id=run_id, resumed_from=resumed_from, created_at=now())
            )

    def resumed_from(self, run_id: str) -> str | None:
        """The run that ``run_id`` resumed, if it resumed one."""
        query = select(run_resumes.c.resumed_from).where(run_resumes.c.run_id == run_id)
        with self.engine.connect() as conn:
            value = conn.execute(query).scalar_one_or_none()
        return None if value is None else str(value)


def _redacted(value: Any) -> Any:
    """``value`` with every string passed through ``redact`` (a parameter holding a URL, say)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def _record(row: Any) -> StepFingerprintRecord:
    return StepFingerprintRecord(
        run_id=row["run_id"],
        step=row["step"],
        digest=row["digest"],
        parts=row["parts"] or {},
        decision=row["decision"],
        reason=row["reason"],
        status=row["status"],
        outcome=row["outcome"],
        created_at=row["created_at"],
    )
