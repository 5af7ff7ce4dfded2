"""OpenLineage START and COMPLETE/FAIL events of a run, through openlineage-python."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etl_nb._logging import get_logger
from etl_nb._masking import redact
from etl_nb.errors import EtlError
from etl_nb.lineage.columns import pipeline_lineage
from etl_nb.lineage.model import (
    DEFAULT_NAMESPACE,
    NAMESPACE_ENV,
    PRODUCER,
    RUN_UUID_NAMESPACE,
    PipelineLineage,
)
from etl_nb.results import StepResult
from etl_nb.spec import (
    LoadStep,
    PipelineSpec,
)

if TYPE_CHECKING:
    pass


log = get_logger(component="lineage")

# --------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------


def configured() -> bool:
    """Whether openlineage-python has a transport configured (the standard places), cheaply."""
    if os.environ.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true":
        return False
    if os.environ.get("OPENLINEAGE_URL") or any(k.startswith("OPENLINEAGE__TRANSPORT") for k in os.environ):
        return True
    paths = (
        os.environ.get("OPENLINEAGE_CONFIG"),
        os.path.join(os.getcwd(), "openlineage.yml"),
        os.path.expanduser("~/.openlineage/openlineage.yml"),
    )
    return any(p and os.path.isfile(p) for p in paths)


_client: Any = None


def _openlineage_client() -> Any:
    """One client per process, made on the first event."""
    global _client  # noqa: PLW0603 - a process-wide client, as openlineage-python intends
    if _client is None:
        # Imported here: openlineage-python is loaded only when lineage is configured.
        from openlineage.client import OpenLineageClient
        from openlineage.client.facet_v2 import set_producer

        set_producer(PRODUCER)  # facets name etl_nb as their producer, as the events do
        _client = OpenLineageClient()
    return _client


def reset_client() -> None:
    """Forget the client, so the next event reads the configuration again (tests, config changes)."""
    global _client  # noqa: PLW0603
    _client = None


def _namespace() -> str:
    return os.environ.get(NAMESPACE_ENV) or DEFAULT_NAMESPACE


def run_uuid(run_id: str) -> str:
    """The OpenLineage run id (a UUID) of etl_nb run ``run_id``: the same for START and COMPLETE."""
    return str(uuid.uuid5(RUN_UUID_NAMESPACE, run_id))


@dataclass
class RunLineage:
    """The START event of one run, waiting for its COMPLETE or FAIL."""

    spec: PipelineSpec
    run_id: str
    base_dir: Path

    @classmethod
    def start(cls, spec: PipelineSpec, run_id: str, base_dir: Path) -> RunLineage | None:
        """Emit START for run ``run_id`` of ``spec``; None (and nothing imported) when not configured."""
        if not configured():
            return None
        lineage = cls(spec, run_id, base_dir)
        lineage._emit("START", None, [])
        return lineage

    def finish(
        self,
        steps: Sequence[StepResult],
        error: str | None = None,
        columns: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """Emit COMPLETE (or FAIL, with ``error``) with the run's datasets and column lineage.

        ``columns`` are the columns of the run's table steps, where known.
        """
        self._emit("FAIL" if error else "COMPLETE", error, steps, columns or {})

    def _emit(
        self,
        kind: str,
        error: str | None,
        steps: Sequence[StepResult],
        columns: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        # Lineage must never fail or slow down a run it describes: a problem is logged.
        try:
            event = self._event(kind, error, steps, columns or {})
            _openlineage_client().emit(event)
        except Exception as exc:
            log.warning("could not emit an OpenLineage event", event=kind, error=redact(str(exc)))

    def _event(
        self,
        kind: str,
        error: str | None,
        steps: Sequence[StepResult],
        columns: Mapping[str, Sequence[str]],
    ) -> Any:
        from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
        from openlineage.client.facet_v2 import (
            column_lineage_dataset,
            error_message_run,
            job_type_job,
            processing_engine_run,
            schema_dataset,
        )

        types = {
            s.step: dict((s.detail or {}).get("columns") or {})
            for s in steps
            if s.kind == "extract" and (s.detail or {}).get("columns")
        }
        known = {
            **{name: list(cols) for name, cols in types.items()},
            **{k: list(v) for k, v in columns.items()},
        }
        try:
            lineage = pipeline_lineage(self.spec, base_dir=self.base_dir, columns=known, types=types)
        except EtlError:  # a spec that does not build (a cycle): the run's error says why
            lineage = PipelineLineage()
        ended = kind != "START"

        def schema(fields: Mapping[str, str | None]) -> Any:
            return schema_dataset.SchemaDatasetFacet(
                fields=[
                    schema_dataset.SchemaDatasetFacetFields(name=redact(n), type=redact(t) if t else None)
                    for n, t in fields.items()
                ]
            )

        inputs = [
            InputDataset(
                namespace=redact(d.namespace),
                name=redact(d.name),
                facets={"schema": schema(cols)} if ended and cols else {},
            )
            for d, cols in lineage.inputs.items()
        ]
        outputs = []
        steps_by_id = self.spec.by_id()
        for output in lineage.outputs:
            load = steps_by_id.get(output.load)
            if isinstance(load, LoadStep) and load.dry_run:  # it wrote nothing
                continue
            facets: dict[str, Any] = {}
            if ended:
                facets["schema"] = schema(dict.fromkeys(output.fields))
                facets["columnLineage"] = column_lineage_dataset.ColumnLineageDatasetFacet(
                    fields={
                        redact(column): column_lineage_dataset.Fields(
                            inputFields=[
                                column_lineage_dataset.InputField(
                                    namespace=redact(s.dataset.namespace),
                                    name=redact(s.dataset.name),
                                    field=redact(s.field),
                                    transformations=[
                                        column_lineage_dataset.Transformation(type=s.type, subtype=s.subtype)
                                    ],
                                )
                                for s in sources
                            ]
                        )
                        for column, sources in output.fields.items()
                    }
                )
            outputs.append(
                OutputDataset(
                    namespace=redact(output.dataset.namespace),
                    name=redact(output.dataset.name),
                    facets=facets,
                )
            )
        run_facets: dict[str, Any] = {
            "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
                version=_version(), name="etl_nb", openlineageAdapterVersion=_openlineage_version()
            )
        }
        if error:
            run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=redact(error), programmingLanguage="python"
            )
        job = Job(
            namespace=redact(_namespace()),
            name=redact(self.spec.name),
            facets={
                "jobType": job_type_job.JobTypeJobFacet(
                    processingType="BATCH", integration="ETL_NB", jobType="PIPELINE"
                )
            },
        )
        return RunEvent(
            eventType=getattr(RunState, kind),
            eventTime=dt.datetime.now(dt.UTC).isoformat(),
            run=Run(runId=run_uuid(self.run_id), facets=run_facets),
            job=job,
            producer=PRODUCER,
            inputs=inputs,
            outputs=outputs,
        )


def _version() -> str:
    try:
        return version("etl_nb")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


def _openlineage_version() -> str:
    try:
        return version("openlineage-python")
    except PackageNotFoundError:  # pragma: no cover - the lineage extra is installed
        return "0"
