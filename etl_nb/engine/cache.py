"""The cache: reuse a step's output while its fingerprint holds, resume a failed run, and say why.

``RunCache`` is the cache's part in one run. Before the first step it
fingerprints every step (``engine/fingerprint.py``) and decides, in DAG
order, whether the step runs or is reused:

- an extract or transform is reused when the cache holds an output under its
  fingerprint, nothing upstream reran, and (a database or API extract) its
  ``cache_ttl`` has not run out. A database or API extract without
  ``cache_ttl`` is never reused: the rows may have changed.
- a check is reused with its last result when its fingerprint is unchanged.
- a load is never taken from the cache: it is skipped only when its
  fingerprint (its input's included) is the one of the last load and its
  target is as that load left it (``Connector.target_state``: a file's size
  and mtime, a table's row count).

With ``resume=R`` the steps that succeeded in run ``R`` come first from the
outputs ``R`` kept. A recorded run keeps the outputs of its database and API
extracts when it fails (they are the expensive ones to repeat), pinned to
that run until a later run of the pipeline succeeds or fails in its turn.

Outputs live in the cache file (``engine/cache_file.py``); fingerprints
and reasons in the run store (``store/fingerprints.py``).
"""

from __future__ import annotations

import datetime as dt
import glob
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from etl_nb._logging import get_logger
from etl_nb._secrets import resolve
from etl_nb.connectors import ConnectorContext
from etl_nb.durations import parse_duration
from etl_nb.engine.cache_file import CacheBusy, CacheEntry, OutputCache
from etl_nb.engine.dag import Dag
from etl_nb.engine.fingerprint import Fingerprint, difference, step_fingerprint
from etl_nb.engine.session import Session
from etl_nb.errors import EtlError
from etl_nb.results import RAN, StepResult, StepStatus
from etl_nb.spec import (
    AUTO_CONNECTION_TYPE,
    CheckStep,
    ConnectionSpec,
    ExtractStep,
    LoadStep,
    PipelineSpec,
    Step,
    TransformStep,
)
from etl_nb.store.fingerprints import FingerprintStore, StepFingerprintRecord
from etl_nb.store.runs import RunStore, aware

if TYPE_CHECKING:  # a files pipeline never loads pyarrow (memory: docs/engine.md)
    import pyarrow as pa

log = get_logger()


# --- one run's decisions --------------------------------------------------------------------


@dataclass
class Decision:
    """Whether a step runs, and why (``reason`` None: nothing to say, the cache is off)."""

    action: str  # ran | reused | skipped
    reason: str | None
    entry: CacheEntry | None = None
    record: StepFingerprintRecord | None = None  # the row a reused check or skipped load repeats

    @property
    def runs(self) -> bool:
        """Whether the step is executed in this run."""
        return self.action == "ran"


def check_resumable(store: RunStore, pipeline: str, run_id: str) -> str:
    """The full id of the failed run of ``pipeline`` that ``run_id`` (or its prefix) names.

    ``EtlError`` in one line if there is no such run, it is another pipeline's, or it did not fail.
    """
    record = store.get_run(run_id)
    if record is None:
        raise EtlError(f"No run '{run_id}' to resume (or the prefix matches several): see 'etl-nb runs'.")
    if record.pipeline != pipeline:
        raise EtlError(
            f"Run {record.id} is a run of '{record.pipeline}', not of '{pipeline}': "
            "resume it with its own notebook."
        )
    if record.status == "success":
        raise EtlError(
            f"Run {record.id} succeeded, so there is nothing to resume: run the pipeline again instead."
        )
    if record.status != "failed":
        raise EtlError(f"Run {record.id} is still {record.status}: resume it once it has failed.")
    return record.id


@dataclass
class RunCache:
    """The cache's part in one run: decide each step, restore reused outputs, keep new ones.

    ``use_cache`` reuses unchanged steps (``Pipeline.run(cache=True)``);
    ``resume`` is the failed run whose kept outputs come first. With neither,
    it only fingerprints the steps and keeps a failed run's database and API
    extracts, so that the run can be resumed.
    """

    spec: PipelineSpec
    dag: Dag
    session: Session
    context: ConnectorContext
    store: RunStore
    outputs: OutputCache
    run_id: str
    use_cache: bool = False
    resume: str | None = None
    fingerprints: dict[str, Fingerprint] = field(default_factory=dict)
    decisions: dict[str, Decision] = field(default_factory=dict)
    _records: FingerprintStore | None = None
    _spools: dict[str, _Spool] = field(default_factory=dict)

    @property
    def explains(self) -> bool:
        """Whether steps carry a decision and a reason (the cache or a resume is on)."""
        return self.use_cache or self.resume is not None

    def prepare(self, nodes: list[str], params: Mapping[str, Any], watermarks: Mapping[str, Any]) -> None:
        """Fingerprint ``nodes`` (in DAG order) and decide for each whether it runs."""
        self._records = FingerprintStore(self.store)
        latest = self._records.latest(self.spec.name)
        resumed = self._records.of_run(self.resume) if self.resume else {}
        for node in nodes:
            self.fingerprints[node] = self._fingerprint(node, params, watermarks)
            self.decisions[node] = Decision("ran", None)
        if not self.explains:
            return  # every step runs: nothing to look up
        try:
            with self.outputs.attached(self.session.con):
                for node in nodes:
                    self.decisions[node] = self._decide(
                        node, self.fingerprints[node], latest.get(node), resumed.get(node)
                    )
        except CacheBusy as exc:
            log.warning("cache file busy: every step runs", error=str(exc))
            for node in nodes:
                self.decisions[node] = Decision(
                    "ran", "cache busy (another process holds it)" if self.explains else None
                )

    def tables(self) -> set[str]:
        """Steps whose output must be a session table: reused ones, and ones whose output is kept."""
        wanted: set[str] = set()
        for node, decision in self.decisions.items():
            step = self.dag.nodes[node]
            if not isinstance(step, ExtractStep | TransformStep):
                continue
            if not decision.runs or (self.use_cache and self._reusable(step)):
                wanted.add(node)
        return wanted

    def spool(self, node: str, reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
        """``reader``, copying its batches to a spool file as they pass, for a database or API extract.

        A streamed extract is never stored in the session; if the run fails, the
        spool (when the stream was read to its end) becomes the output the run
        keeps for ``--resume``. Memory stays flat; the spool is deleted after the run.
        """
        import pyarrow as pa

        step = self.dag.nodes[node]
        if not self._remote(step):
            return reader
        path = self.outputs.path.parent / "spool" / self.run_id / f"{node}.arrows"
        path.parent.mkdir(parents=True, exist_ok=True)
        spool = self._spools[node] = _Spool(path)

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, reader.schema) as writer:
                    for batch in reader:
                        writer.write_batch(batch)
                        yield batch
                spool.complete = True
            finally:
                reader.close()  # released as soon as its reader stops, as without the spool

        spool.reader = pa.RecordBatchReader.from_batches(reader.schema, batches())
        return spool.reader

    def drain_unread(self) -> None:
        """After a failure, read to its end each spooled stream no step read, so the run keeps it.

        The step that would have read it failed first (a SQL error in a transform
        fused into a load, say): reading the source now spares the resumed run.
        """
        for node, spool in self._spools.items():
            if spool.complete or spool.reader is None:
                continue
            try:
                for _ in spool.reader:
                    pass
            except Exception as exc:  # consumed already, or the source failed: nothing to keep
                log.info("a streamed extract is not kept for --resume", step=node, error=str(exc))

    def reuse(self, node: str) -> StepResult | None:
        """The result of a step this run does not execute (its output restored), or None: run it."""
        decision = self.decisions.get(node)
        if decision is None or decision.runs:
            return None
        step = self.dag.nodes[node]
        started = time.perf_counter()
        if decision.entry is not None:
            try:
                with self.outputs.attached(self.session.con):
                    self.session.put(node, self.outputs.restore(self.session.con, decision.entry), table=True)
            except (CacheBusy, EtlError, duckdb.Error) as exc:  # gone or locked since: run the step
                log.warning("cannot restore a cached output: the step runs", step=node, error=str(exc))
                self.decisions[node] = Decision(
                    "ran", "its cached output could not be read" if self.explains else None
                )
                return None
            result = StepResult(node, step.verb, "success", rows=decision.entry.rows)
        else:
            record = decision.record
            assert record is not None
            kept = (record.outcome or {}).get("result", {})
            status: StepStatus = kept.get("status", "success") if isinstance(step, CheckStep) else "success"
            result = StepResult(node, step.verb, status, error=kept.get("error"), detail=kept.get("detail"))
        result.seconds = time.perf_counter() - started
        self._explain(result, decision)
        return result

    def finish(self, steps: list[StepResult], *, failed: bool) -> None:
        """After the run: say why in each step's detail, keep outputs, evict, record the fingerprints."""
        outcomes: dict[str, dict[str, Any]] = {}
        for result in steps:
            decision = self.decisions.get(result.step)
            if decision is None:
                continue
            if decision.runs:
                self._explain(result, decision)
            outcomes[result.step] = self._outcome(result, decision)
        keeping = self._to_keep(steps, failed=failed)
        if keeping or self.outputs.path.exists():
            self._keep(keeping, failed=failed)
        if self._spools:
            shutil.rmtree(next(iter(self._spools.values())).path.parent, ignore_errors=True)
        assert self._records is not None
        records = [
            StepFingerprintRecord(
                run_id=self.run_id,
                step=r.step,
                digest=self.fingerprints[r.step].digest,
                parts=self.fingerprints[r.step].parts,
                decision=self.decisions[r.step].action,
                reason=self.decisions[r.step].reason,
                status=r.status,
                outcome=outcomes[r.step],
            )
            for r in steps
            if r.step in self.fingerprints and r.step in outcomes
        ]
        self._records.record(self.spec.name, records)
        if self.resume:
            self._records.record_resume(self.run_id, self.resume)

    # --- deciding ---------------------------------------------------------------------------

    def _decide(
        self,
        node: str,
        fingerprint: Fingerprint,
        last: StepFingerprintRecord | None,
        resumed: StepFingerprintRecord | None,
    ) -> Decision:
        step = self.dag.nodes[node]
        reran = [u for u in self.dag.upstream(node) if u in self.decisions and self.decisions[u].runs]
        if self.resume is not None:
            decision = self._decide_resumed(node, step, fingerprint, resumed, reran)
            if decision.runs and self.use_cache:
                return self._decide_cached(node, step, fingerprint, last, reran, fallback=decision)
            return decision
        if self.use_cache:
            return self._decide_cached(node, step, fingerprint, last, reran)
        return Decision("ran", None)

    def _decide_resumed(
        self,
        node: str,
        step: Step,
        fingerprint: Fingerprint,
        resumed: StepFingerprintRecord | None,
        reran: list[str],
    ) -> Decision:
        run = self.resume
        if resumed is None:
            return Decision("ran", f"not in run {run}")
        if resumed.status not in RAN:
            change = difference(fingerprint, resumed.parts) if resumed.digest != fingerprint.digest else None
            what = "failed" if resumed.status == "failed" else "did not run"
            return Decision("ran", f"{what} in run {run}" + (f", {change} since" if change else ""))
        if resumed.digest != fingerprint.digest:
            change = difference(fingerprint, resumed.parts)
            if change is None and reran:
                return Decision("ran", f"upstream {reran[0]} reran")
            return Decision("ran", f"{change or 'input changed'} since run {run}")
        if isinstance(step, LoadStep):
            return Decision("ran", f"run {run} committed no load")
        if isinstance(step, CheckStep):
            if reran:
                return Decision("ran", f"upstream {reran[0]} reran")
            return Decision("reused", f"passed in run {run}", record=resumed)
        entry = self.outputs.find(self.session.con, self.spec.name, node, fingerprint.digest)
        if entry is None:
            return Decision("ran", f"run {run} kept no output of it (it keeps database and API extracts)")
        return Decision("reused", f"kept by run {run}, resumed", entry=entry)

    def _decide_cached(
        self,
        node: str,
        step: Step,
        fingerprint: Fingerprint,
        last: StepFingerprintRecord | None,
        reran: list[str],
        *,
        fallback: Decision | None = None,
    ) -> Decision:
        change = difference(fingerprint, last.parts if last is not None else None)

        def rerun(reason: str) -> Decision:
            return fallback if fallback is not None else Decision("ran", reason)

        if isinstance(step, ExtractStep | TransformStep):
            if not self._reusable(step):
                kind = "API" if isinstance(step, ExtractStep) and self._kind(step) == "http" else "database"
                return rerun(f"not cached ({kind} source without cache_ttl)")
            entry = self.outputs.find(self.session.con, self.spec.name, node, fingerprint.digest)
            if entry is not None and not reran:
                if isinstance(step, ExtractStep) and step.cache_ttl and _expired(entry, step.cache_ttl):
                    return rerun("cache_ttl expired")
                return Decision("reused", f"unchanged since run {entry.run_id}", entry=entry)
            return rerun(change or (f"upstream {reran[0]} reran" if reran else "not in the cache"))
        if change is not None:
            return rerun(change)
        if reran:
            return rerun(f"upstream {reran[0]} reran")
        assert last is not None
        if last.digest != fingerprint.digest:
            return rerun(f"input changed since run {last.run_id}")
        if isinstance(step, CheckStep):
            return Decision("reused", f"unchanged since run {last.run_id}", record=last)
        assert isinstance(step, LoadStep)
        return self._decide_load(step, last, rerun)

    def _decide_load(
        self, step: LoadStep, last: StepFingerprintRecord, rerun: Callable[[str], Decision]
    ) -> Decision:
        written = (last.outcome or {}).get("target")
        if written is None:
            return rerun(f"run {last.run_id} left no record of its target")
        now = self._target_state(step)
        if now is None:
            return rerun("its target cannot be checked")
        if now != written:
            return rerun(f"target {step.target} changed since run {last.run_id}")
        return Decision("skipped", f"input and target unchanged since run {last.run_id}", record=last)

    # --- fingerprints and sources ---------------------------------------------------------

    def _fingerprint(
        self, node: str, params: Mapping[str, Any], watermarks: Mapping[str, Any]
    ) -> Fingerprint:
        step = self.dag.nodes[node]
        upstream = {u: self.fingerprints[u].digest for u in self.dag.upstream(node) if u in self.fingerprints}
        connection = self._connection(step)
        files = since = None
        if isinstance(step, ExtractStep):
            if self._kind(step) == "files":
                files = self._file_stats(step)
            if step.incremental:
                since = watermarks.get(step.name)
        return step_fingerprint(
            node, step, connection=connection, params=params, upstream=upstream, files=files, since=since
        )

    def _connection(self, step: Step) -> ConnectionSpec | None:
        if isinstance(step, ExtractStep):
            return self.spec.connections.get(step.source)
        if isinstance(step, LoadStep):
            return self.spec.connections.get(step.to)
        return None

    def _kind(self, step: ExtractStep) -> str:
        connection = self.spec.connections.get(step.source)
        if connection is None:
            return "unknown"
        if connection.type != AUTO_CONNECTION_TYPE:
            return connection.type
        try:
            return Session.kind(connection, self.context)
        except EtlError:
            return "unknown"

    def _remote(self, step: Step) -> bool:
        """A database or API extract: expensive to repeat, so a failed run keeps its rows."""
        return isinstance(step, ExtractStep) and self._kind(step) != "files"

    def _reusable(self, step: Step) -> bool:
        """Whether the cache may reuse the step's output: files and transforms, remote with a ttl."""
        return not self._remote(step) or (isinstance(step, ExtractStep) and step.cache_ttl is not None)

    def _file_stats(self, step: ExtractStep) -> dict[str, tuple[int, int]]:
        """``{path: (size, mtime_ns)}`` of the files the extract reads, named as the connection is written.

        Paths are shown under the connection's URL as declared (``data/orders.csv``), never
        under a resolved ``${VAR}``.
        """
        connection = self.spec.connections[step.source]
        assert step.path is not None
        try:
            resolved = resolve(connection.url, self.context.env_file, connection=connection.name)
            folder = (self.context.base_dir / Path(resolved).expanduser()).resolve()
        except EtlError:
            return {}
        shown = os.path.normpath(connection.url)
        stats: dict[str, tuple[int, int]] = {}
        for path in sorted(glob.glob(str(folder / step.path), recursive=True)):
            # A path outside the folder is refused by the extract itself; never look at it here.
            if os.path.isfile(path) and Path(path).resolve().is_relative_to(folder):
                stat = os.stat(path)
                relative = os.path.relpath(path, folder)
                stats[os.path.normpath(os.path.join(shown, relative))] = (stat.st_size, stat.st_mtime_ns)
        return stats

    def _target_state(self, step: LoadStep) -> dict[str, Any] | None:
        connection = self.spec.connections.get(step.to)
        if connection is None:
            return None
        try:
            return self.session.connector(connection, self.context).target_state(step)
        except Exception as exc:  # the load itself will say what is wrong
            log.info("cannot read a load's target state", step=step.step, error=str(exc))
            return None

    # --- after the run --------------------------------------------------------------------

    def _keep(self, keeping: list[tuple[str, bool, bool]], *, failed: bool) -> None:
        """Copy the ``(step, pinned, reusable)`` outputs into the file, let go of older pins, evict."""
        try:
            with self.outputs.attached(self.session.con):
                for node, pinned, reusable in keeping:
                    spool = self._spools.get(node)
                    self.outputs.keep(
                        self.session.con,
                        self.spec.name,
                        node,
                        self.fingerprints[node].digest,
                        run_id=self.run_id,
                        pinned_by=self.run_id if pinned else None,
                        reusable=reusable,
                        spooled=spool.path if spool is not None and spool.complete else None,
                    )
                self.outputs.release(
                    self.session.con, self.spec.name, keep_run=self.run_id if failed else None
                )
                self.outputs.evict(self.session.con)
        except (CacheBusy, duckdb.Error) as exc:  # the run stands; only its outputs are not kept
            log.warning("cannot keep this run's outputs in the cache", error=str(exc))

    def _to_keep(self, steps: list[StepResult], *, failed: bool) -> list[tuple[str, bool, bool]]:
        """The outputs to copy into the cache, each with whether it is pinned and reusable.

        With the cache on: every reusable output that ran. A failed run: its database and
        API extracts (those restored from the cache too, pinned to this run now).
        """
        keeping: list[tuple[str, bool, bool]] = []
        for result in steps:
            step = self.dag.nodes.get(result.step)
            decision = self.decisions.get(result.step)
            spool = self._spools.get(result.step)
            stored = self.session.objects.get(result.step) == "table"
            if (
                decision is None
                or not result.ran
                or not isinstance(step, ExtractStep | TransformStep)
                or not (stored or (spool is not None and spool.complete))
            ):
                continue
            reusable = self._reusable(step)
            remote = self._remote(step)
            if not ((self.use_cache and reusable) or (failed and remote)):
                continue
            if not decision.runs and not (failed and remote):
                continue  # restored from the cache: already there
            keeping.append((result.step, failed and remote, reusable))
        return keeping

    def _outcome(self, result: StepResult, decision: Decision) -> dict[str, Any]:
        step = self.dag.nodes[result.step]
        if not decision.runs and decision.record is not None:
            return dict(decision.record.outcome or {})  # a repeated check, a skipped load: as it was
        if isinstance(step, CheckStep):
            return {"result": {"status": result.status, "error": result.error, "detail": result.detail}}
        if isinstance(step, LoadStep) and result.ran:
            return {"target": self._target_state(step)}
        return {}

    def _explain(self, result: StepResult, decision: Decision) -> None:
        if decision.reason is None:
            return
        result.detail = {**(result.detail or {}), "decision": decision.action, "reason": decision.reason}


@dataclass
class _Spool:
    """Where a streamed extract's batches were copied, and whether the stream was read to its end."""

    path: Path
    complete: bool = False
    reader: pa.RecordBatchReader | None = None


def _expired(entry: CacheEntry, ttl: str) -> bool:
    created = aware(entry.created_at)
    assert created is not None
    return (dt.datetime.now(dt.UTC) - created).total_seconds() > parse_duration(ttl, what="--cache-ttl")


# --- how notebooks ask for it ----------------------------------------------------------------

# Set by `etl-nb run --cache` / `--resume RUN_ID` for the kernel, read by `%etl run`.
CACHE_ENV = "ETL_NB_CACHE"
RESUME_ENV = "ETL_NB_RESUME"


def recorded_run_environment(*, cache: bool, resume: str | None) -> dict[str, str]:
    """The variables that tell a recorded run's kernel to use the cache or resume a run."""
    return {CACHE_ENV: "1" if cache else "", RESUME_ENV: resume or ""}


def notebook_run_options(*, recorded: bool) -> dict[str, Any]:
    """How ``%etl run`` uses the cache: always in an interactive kernel, as asked in ``etl-nb run``."""
    if not recorded:
        return {"cache": True}
    return {"cache": os.environ.get(CACHE_ENV) == "1", "resume": os.environ.get(RESUME_ENV) or None}
