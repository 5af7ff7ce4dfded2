"""What the lineage says: datasets, input columns, a pipeline's lineage, as plain data."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    pass


NAMESPACE_ENV = "ETL_NB_LINEAGE_NAMESPACE"
DEFAULT_NAMESPACE = "etl_nb"
PRODUCER = "https://pypi.org/project/etl-nb/"
RUN_UUID_NAMESPACE = uuid.UUID("5b7c3f0e-5a4e-4f0e-9d7e-2f0c1e1e7a11")

Kind = Literal["DIRECT", "INDIRECT"]
# sqlglot's dialect per connection kind, for the SQL an extract runs on its source.
SOURCE_DIALECTS = {"postgres": "postgres", "postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql"}
DEFAULT_PORTS = {"postgres": 5432, "mysql": 3306, "mariadb": 3306, "https": 443, "http": 80}


# --------------------------------------------------------------------------------------
# What the lineage says
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Dataset:
    """An OpenLineage dataset: ``namespace`` (where) and ``name`` (what)."""

    namespace: str
    name: str

    def __str__(self) -> str:
        # A file's name is its absolute path; elsewhere the namespace says where, then what.
        if self.namespace == "file":
            return self.name
        return f"{self.namespace}{'' if self.name.startswith('/') else '/'}{self.name}"


@dataclass(frozen=True, order=True)
class InputColumn:
    """One source column an output column depends on, and how (OpenLineage transformation)."""

    dataset: Dataset
    field: str
    type: Kind
    subtype: str

    def __str__(self) -> str:
        return f"{self.dataset}.{self.field} ({self.type} {self.subtype})"


@dataclass
class OutputLineage:
    """A load's target and, for each of its columns, the source columns it comes from."""

    load: str
    dataset: Dataset
    fields: dict[str, list[InputColumn]] = field(default_factory=dict)


@dataclass
class PipelineLineage:
    """The datasets a pipeline reads (with the columns it reads, and their types where known)
    and the column lineage of each dataset it writes."""

    inputs: dict[Dataset, dict[str, str | None]] = field(default_factory=dict)
    outputs: list[OutputLineage] = field(default_factory=list)

    def text(self) -> str:
        """One block per output: each column and where it comes from."""
        if not self.outputs:
            return "The pipeline loads nothing, so it has no column lineage."
        lines = ["inputs:"]
        lines += [f"  {dataset}: {', '.join(columns) or '?'}" for dataset, columns in self.inputs.items()]
        for output in self.outputs:
            lines.append(f"{output.dataset}  <- {output.load}")
            width = max((len(c) for c in output.fields), default=0)
            for column, sources in output.fields.items():
                direct = [s for s in sources if s.type == "DIRECT"]
                indirect = [s for s in sources if s.type == "INDIRECT"]
                shown = (
                    ", ".join(f"{s.dataset}.{s.field} {s.subtype.lower()}" for s in direct) or "(no column)"
                )
                lines.append(f"  {column.ljust(width)}  <- {shown}")
                if indirect:
                    through = ", ".join(f"{s.dataset}.{s.field} {s.subtype.lower()}" for s in indirect)
                    lines.append(f"  {''.ljust(width)}     indirect: {through}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The lineage as JSON (``etl-nb lineage --json``)."""
        return {
            "inputs": [
                {"namespace": d.namespace, "name": d.name, "columns": columns}
                for d, columns in self.inputs.items()
            ],
            "outputs": [
                {
                    "load": o.load,
                    "namespace": o.dataset.namespace,
                    "name": o.dataset.name,
                    "fields": {c: [_input_field(s) for s in sources] for c, sources in o.fields.items()},
                }
                for o in self.outputs
            ],
        }


def _input_field(source: InputColumn) -> dict[str, Any]:
    return {
        "namespace": source.dataset.namespace,
        "name": source.dataset.name,
        "field": source.field,
        "transformations": [{"type": source.type, "subtype": source.subtype}],
    }
