"""What a pipeline is, as data: connections and steps, and the ``%%etl`` grammar.

``parse_cell`` turns the text of one ``%%etl`` cell (its magic line and body)
into a validated statement. The magics, the notebook reader, the panel and
export all call it, so what runs in a kernel is what every other view sees.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from etl_nb._yaml import load_yaml_body
from etl_nb.durations import count_problem, parse_duration
from etl_nb.errors import SpecError, did_you_mean

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
PARAMETER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
ANY_PARAMETER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)

_Built = TypeVar("_Built", bound=BaseModel)

LoadMode = Literal["append", "replace", "merge"]
# Rerunning a load cell, or a whole notebook, never duplicates rows.
DEFAULT_LOAD_MODE: LoadMode = "replace"
FileFormat = Literal["csv", "parquet", "json", "ndjson"]
# What a change in an extract's columns since its last good run does: a warning, or a failed run.
DriftPolicy = Literal["warn", "fail"]


def _identifier(value: str) -> str:
    if not IDENTIFIER.match(value):
        raise ValueError(
            f"'{value}' is not a valid name: use letters, digits and underscores, "
            "starting with a letter or underscore (for example 'daily_orders')"
        )
    return value


Identifier = Annotated[str, Field(min_length=1)]


def _nul_byte_in(value: Any) -> bool:
    """Whether a NUL byte hides in ``value`` (text, or text inside lists and mappings)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_nul_byte_in(k) or _nul_byte_in(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_nul_byte_in(v) for v in value)
    return False


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    @model_validator(mode="after")
    def _no_nul_bytes(self) -> Any:
        # C strings end at NUL: PostgreSQL ran "SELECT * FROM t\x00 WHERE id = 1" as "SELECT * FROM t".
        for name in type(self).model_fields:
            if _nul_byte_in(getattr(self, name)):
                raise ValueError(
                    f"'{name}' contains a NUL byte (\\x00), which databases and file systems cut "
                    "the text at. Remove it"
                )
        return self


class ConnectionSpec(_Model):
    """A named place data comes from or goes to.

    ``url`` keeps ``${VAR}`` references unresolved; connectors resolve them
    only when they open.
    """

    name: Identifier
    type: str
    url: str
    options: dict[str, Any] = Field(default_factory=dict)
    cell: int | None = None

    _check_name = field_validator("name")(_identifier)

    @field_validator("url")
    @classmethod
    def _parsable_url(cls, url: str) -> str:
        if "://" not in url or "\x00" in url:
            return url
        try:
            parts = urlsplit(url)
            if "${" not in parts.netloc:  # a ${PORT} is only known when the connection opens
                _ = parts.port
        except ValueError as exc:
            raise ValueError(
                f"{url!r} is not a valid URL ({exc}). Check the host, the brackets around an "
                "IPv6 address and the port"
            ) from None
        return url


class ExtractStep(_Model):
    """Pull data from a connection into table ``name``."""

    verb: Literal["extract"] = "extract"
    name: Identifier
    source: Identifier
    query: str | None = None
    path: str | None = None
    format: FileFormat | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    records: str | None = None
    paginate: dict[str, Any] | None = None
    incremental: str | None = None
    on_drift: DriftPolicy = "warn"
    cache_ttl: str | None = None  # how long a cached output of a database or API stays good ("1h")
    cell: int | None = None

    _check_name = field_validator("name", "source")(_identifier)

    @field_validator("cache_ttl")
    @classmethod
    def _check_cache_ttl(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_duration(value, what="--cache-ttl")
            except SpecError as exc:  # pydantic reports ValueErrors, with the step's name
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _has_a_body(self) -> ExtractStep:
        if self.query is None and self.path is None:
            raise ValueError(
                "an extract needs a SQL query (databases) or a 'path:' (files, REST APIs) in its body"
            )
        return self

    @property
    def parameters(self) -> list[str]:
        """Names of the ``{{ name }}`` parameters its query (or its ``params:`` values) uses."""
        # REST extracts bind {{ name }} through params: values (sent as query parameters).
        return parameters_in(" ".join([self.query or "", *(str(v) for v in self.params.values())]))


class TransformStep(_Model):
    """Create table ``name`` from earlier steps with DuckDB SQL or Python."""

    verb: Literal["transform"] = "transform"
    name: Identifier
    sql: str | None = None
    python: str | None = None
    function: Callable[..., Any] | None = Field(default=None, exclude=True)
    cell: int | None = None

    _check_name = field_validator("name")(_identifier)

    @model_validator(mode="after")
    def _has_exactly_one_body(self) -> TransformStep:
        given = [b for b in (self.sql, self.python, self.function) if b is not None]
        if len(given) != 1:
            raise ValueError("a transform needs exactly one of: sql, python code or a python function")
        if self.sql is not None and not self.sql.strip():
            raise ValueError("the transform's SQL is empty: write a SELECT in the cell body")
        return self

    @property
    def parameters(self) -> list[str]:
        """Names of the ``{{ name }}`` parameters its SQL uses."""
        return parameters_in(self.sql or "")


CheckKind = Literal["not_null", "unique", "accepted_values", "row_count", "expression"]


class CheckRule(_Model):
    """One rule of a check: ``kind`` and the fields that kind uses."""

    kind: CheckKind
    columns: list[str] = Field(default_factory=list)
    values: list[Any] = Field(default_factory=list)
    min: int | None = None
    max: int | None = None
    expression: str | None = None

    def describe(self) -> str:
        """A short label, e.g. ``not_null(customer_id)``."""
        if self.kind == "row_count":
            bounds = [f"{k}={v}" for k, v in (("min", self.min), ("max", self.max)) if v is not None]
            return f"row_count({', '.join(bounds)})"
        if self.kind == "expression":
            return f"expression({self.expression})"
        if self.kind == "accepted_values":
            return f"accepted_values({self.columns[0]})"
        return f"{self.kind}({', '.join(self.columns)})"


class CheckStep(_Model):
    """Data checks on the output of step ``step``."""

    verb: Literal["check"] = "check"
    step: Identifier
    rules: list[CheckRule]
    warn: bool = False
    cell: int | None = None

    _check_step = field_validator("step")(_identifier)

    @property
    def parameters(self) -> list[str]:
        """Names of the ``{{ name }}`` parameters its expressions use."""
        return parameters_in(" ".join(r.expression or "" for r in self.rules))


class LoadStep(_Model):
    """Write the output of step ``step`` to connection ``to``."""

    verb: Literal["load"] = "load"
    step: Identifier
    to: Identifier
    table: str | None = None
    path: str | None = None
    mode: LoadMode = DEFAULT_LOAD_MODE
    key: list[str] = Field(default_factory=list)
    dry_run: bool = False
    cell: int | None = None

    _check_names = field_validator("step", "to")(_identifier)

    @model_validator(mode="after")
    def _target_and_key(self) -> LoadStep:
        if (self.table is None) == (self.path is None):
            raise ValueError(
                "a load needs exactly one target: --table NAME (databases) or --path FILE (files)"
            )
        if self.mode == "merge" and not self.key:
            raise ValueError("--mode merge needs --key COLUMN[,COLUMN] to match rows")
        if self.key and self.mode != "merge":
            raise ValueError("--key only applies to --mode merge")
        return self

    @property
    def target(self) -> str:
        """The table or path written to."""
        return self.table or self.path or ""


Step = ExtractStep | TransformStep | CheckStep | LoadStep


class Command(_Model):
    """A line magic that acts on the pipeline instead of declaring a step."""

    verb: Literal["run", "dag", "runs", "show", "export", "reset", "params"]
    target: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)


Statement = ConnectionSpec | Step | Command


def step_id(step: Step) -> str:
    """The step's node id in the DAG: its name, or a derived id for checks and loads."""
    if isinstance(step, CheckStep):
        return f"check:{step.step}"
    if isinstance(step, LoadStep):
        return f"load:{step.step}:{step.to}:{step.target}"
    return step.name


class PipelineSpec(_Model):
    """A whole pipeline: its connections, its steps in declaration order, its parameters."""

    model_config = ConfigDict(extra="forbid", frozen=False, arbitrary_types_allowed=True)

    name: Identifier
    connections: dict[str, ConnectionSpec] = Field(default_factory=dict)
    steps: list[Step] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _no_nul_bytes(self) -> Any:
        # Its steps and connections checked themselves; parameter values are bound, never text.
        return self

    def add(self, statement: ConnectionSpec | Step) -> None:
        """Add a connection or step, replacing an earlier one with the same identity."""
        if isinstance(statement, ConnectionSpec):
            if statement.name in self.tables():
                raise SpecError(f"'{statement.name}' is already a step; give the connection another name.")
            self.connections[statement.name] = statement
            return
        if isinstance(statement, ExtractStep | TransformStep) and statement.name in self.connections:
            raise SpecError(
                f"'{statement.name}' is already a connection; give the step another name.",
                step=statement.name,
            )
        new_id = step_id(statement)
        for i, existing in enumerate(self.steps):
            if step_id(existing) == new_id:
                self.steps[i] = statement
                return
        self.steps.append(statement)

    def tables(self) -> dict[str, ExtractStep | TransformStep]:
        """The steps that make a table, by name."""
        return {s.name: s for s in self.steps if isinstance(s, ExtractStep | TransformStep)}

    def by_id(self) -> dict[str, Step]:
        """Every step by its DAG node id."""
        return {step_id(s): s for s in self.steps}


# --------------------------------------------------------------------------------------
# The grammar
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Verb:
    positional: tuple[str, ...]  # names; a trailing '?' marks optional
    flags: frozenset[str] = frozenset()
    valued: frozenset[str] = frozenset()
    body: Literal["required", "optional", "none"] = "none"
    required: frozenset[str] = field(default_factory=frozenset)
    example: str = ""


_VERBS: dict[str, _Verb] = {
    "connect": _Verb(("NAME", "URL?"), body="optional", example="%etl connect lake ./data"),
    "extract": _Verb(
        ("NAME",),
        valued=frozenset({"from", "incremental", "on-drift", "cache-ttl"}),
        body="required",
        required=frozenset({"from"}),
        example="%%etl extract orders --from shop",
    ),
    "transform": _Verb(
        ("NAME",), flags=frozenset({"python"}), body="required", example="%%etl transform revenue"
    ),
    "check": _Verb(("STEP",), flags=frozenset({"warn"}), body="required", example="%%etl check revenue"),
    "load": _Verb(
        ("STEP",),
        flags=frozenset({"dry-run"}),
        valued=frozenset({"to", "table", "path", "mode", "key"}),
        required=frozenset({"to"}),
        example="%etl load revenue --to lake --path revenue.parquet",
    ),
    "run": _Verb((), valued=frozenset({"only", "from"}), example="%etl run --only orders,revenue"),
    "dag": _Verb((), example="%etl dag"),
    "runs": _Verb((), valued=frozenset({"limit"}), example="%etl runs --limit 10"),
    "show": _Verb(("STEP",), valued=frozenset({"limit"}), example="%etl show revenue --limit 20"),
    "export": _Verb(("PATH?",), valued=frozenset({"to"}), example="%etl export revenue.py --to py"),
    "reset": _Verb((), example="%etl reset"),
    "params": _Verb((), example="%etl params"),
}

VERBS = tuple(_VERBS)
CHECK_KINDS: tuple[str, ...] = ("not_null", "unique", "accepted_values", "row_count", "expression")
_EXTRACT_BODY_KEYS = ("path", "format", "options", "params", "records", "paginate")


def parameters_in(text: str) -> list[str]:
    """The ``{{ name }}`` parameter names in ``text``, in order of first use."""
    return list(dict.fromkeys(PARAMETER.findall(text)))


def _suggest(word: str, choices: list[str] | tuple[str, ...]) -> str:
    return did_you_mean(word, choices)


def parse_cell(line: str, body: str | None = None, *, cell: int | None = None) -> Statement:
    """Parse one ``%%etl`` cell (``line`` after the magic name, and its body).

    ``body`` is None for the line form ``%etl ...``. Raises ``SpecError`` with
    a sentence naming the problem and the fix; never any other exception.
    """
    try:
        words = shlex.split(line, comments=False, posix=True)
    except ValueError as exc:
        raise SpecError(
            f"Cannot read the line '%etl {line.strip()}': {exc}. Close the quote.", cell=cell
        ) from None
    if not words:
        raise SpecError(f"An empty %etl line does nothing. Start with one of: {', '.join(VERBS)}.", cell=cell)
    verb_name, rest = words[0], words[1:]
    verb = _VERBS.get(verb_name)
    if verb is None:
        raise SpecError(
            f"Unknown verb '{verb_name}'.{_suggest(verb_name, VERBS)} Verbs: {', '.join(VERBS)}.",
            cell=cell,
        )
    positional, options = _split_words(verb_name, verb, rest, cell)
    name = positional.get("NAME") or positional.get("STEP")
    has_body = body is not None and body.strip() != ""
    if verb.body == "required" and not has_body:
        raise SpecError(
            f"{verb_name} '{name}' needs a body: use the cell form ({verb.example}) "
            "with the body on the lines below.",
            step=name,
            cell=cell,
        )
    if verb.body == "none" and has_body:
        raise SpecError(
            f"{verb_name} takes no body; write it as one line: {verb.example}", step=name, cell=cell
        )
    try:
        return _BUILDERS[verb_name](positional, options, (body or "").strip("\n"), cell)
    except ValidationError as exc:
        raise invalid(verb_name, name, exc, cell=cell) from None


def _split_words(
    verb_name: str, verb: _Verb, words: list[str], cell: int | None
) -> tuple[dict[str, str], dict[str, Any]]:
    known = sorted(verb.flags | verb.valued)
    options: dict[str, Any] = {}
    positional: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("--") and len(word) > 2:
            key, eq, value = word[2:].partition("=")
            if key in verb.flags and not eq:
                options[key] = True
            elif key in verb.flags:
                raise SpecError(
                    f"Option --{key} of {verb_name} is a switch and takes no value: write --{key}.",
                    cell=cell,
                )
            elif key in verb.valued:
                if not eq:
                    i += 1
                    if i >= len(words) or words[i].startswith("--"):
                        raise SpecError(f"Option --{key} of {verb_name} needs a value.", cell=cell)
                    value = words[i]
                options[key] = value
            else:
                listed = ", ".join(f"--{k}" for k in known) or "none"
                raise SpecError(
                    f"Unknown option '--{key}' for {verb_name}."
                    f"{_suggest(key, known).replace(chr(39), chr(39) + '--', 1)} "
                    f"Options of {verb_name}: {listed}.",
                    cell=cell,
                )
        else:
            positional.append(word)
        i += 1
    names = [p.rstrip("?") for p in verb.positional]
    needed = [p for p in verb.positional if not p.endswith("?")]
    if len(positional) < len(needed):
        raise SpecError(f"{verb_name} needs {' '.join(needed)}: for example {verb.example}", cell=cell)
    if len(positional) > len(names):
        extra = " ".join(positional[len(names) :])
        raise SpecError(f"Unexpected '{extra}' after {verb_name}: for example {verb.example}", cell=cell)
    missing = sorted(verb.required - options.keys())
    if missing:
        raise SpecError(
            f"{verb_name} needs --{missing[0]}: for example {verb.example}",
            step=positional[0] if positional else None,
            cell=cell,
        )
    by_name = dict(zip(names, positional, strict=False))
    for key in ("NAME", "STEP"):
        if key in by_name and not IDENTIFIER.match(by_name[key]):
            raise SpecError(
                f"'{by_name[key]}' is not a valid step name: use letters, digits and underscores, "
                "starting with a letter or underscore (for example 'daily_orders').",
                cell=cell,
            )
    return by_name, options


def _yaml(body: str, what: str, step: str | None, cell: int | None) -> Any:
    try:
        return load_yaml_body(body) if body.strip() else None
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or "it does not parse"
        raise SpecError(
            f"The body of {what} is not valid YAML{where}: {problem}. "
            "Check the indentation and that each 'key: value' is on its own line.",
            step=step,
            cell=cell,
        ) from None
    except (ValueError, RecursionError) as exc:
        raise SpecError(f"The body of {what} cannot be read as YAML: {exc}.", step=step, cell=cell) from None


# The type of a connection whose URL is a ${VAR} reference, until the reference is resolved.
AUTO_CONNECTION_TYPE = "auto"


def infer_connection_type(url: str) -> str:
    """The connector kind a URL or path implies.

    A URL that starts with a ``${VAR}`` reference (``${DATABASE_URL}``) is
    ``"auto"``: its kind is known only when the connection opens and the
    reference is resolved (see ``Session.connector``).
    """
    if url.lstrip().startswith("${"):
        return AUTO_CONNECTION_TYPE
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("http", "https"):
        return "http"
    if scheme.startswith(("postgresql", "postgres")):
        return "postgres"
    if scheme:
        return "sql"
    return "files"


def _build_connect(pos: dict[str, str], opts: dict[str, Any], body: str, cell: int | None) -> Statement:
    name = pos["NAME"]
    data = _yaml(body, f"connection '{name}'", name, cell) or {}
    if not isinstance(data, dict):
        raise SpecError(
            f"The body of connection '{name}' must be YAML keys such as 'url:', 'type:' or 'headers:'.",
            step=name,
            cell=cell,
        )
    url = pos.get("URL") or data.pop("url", None)
    data.pop("url", None)
    if not url or not isinstance(url, str):
        raise SpecError(
            f"Connection '{name}' needs a URL or folder: %etl connect {name} ./data (or 'url:' in the body).",
            step=name,
            cell=cell,
        )
    kind = data.pop("type", None) or infer_connection_type(url)
    return ConnectionSpec(name=name, type=str(kind), url=url, options=data, cell=cell)


def _build_extract(pos: dict[str, str], opts: dict[str, Any], body: str, cell: int | None) -> Statement:
    name = pos["NAME"]
    fields: dict[str, Any] = {
        "name": name,
        "source": opts["from"],
        "incremental": opts.get("incremental"),
        "cache_ttl": opts.get("cache-ttl"),
    }
    if "on-drift" in opts:
        if opts["on-drift"] not in ("warn", "fail"):
            raise SpecError(
                f"Unknown --on-drift '{opts['on-drift']}' for extract '{name}': use warn or fail.",
                step=name,
                cell=cell,
            )
        fields["on_drift"] = opts["on-drift"]
    data = _structured_body(body, name, cell)
    if isinstance(data, dict):
        # YAML keys may be numbers, booleans or null; compare them as the text the user wrote.
        unknown = sorted({str(k) for k in data} - set(_EXTRACT_BODY_KEYS))
        if unknown:
            raise SpecError(
                f"Unknown key '{unknown[0]}' in the body of extract '{name}'."
                f"{_suggest(unknown[0], _EXTRACT_BODY_KEYS)} Keys: {', '.join(_EXTRACT_BODY_KEYS)}.",
                step=name,
                cell=cell,
            )
        fields.update({k: v for k, v in data.items() if v is not None})
    else:
        fields["query"] = body
    return ExtractStep(**fields, cell=cell)


_YAML_BODY_START = re.compile(r"\s*(" + "|".join(_EXTRACT_BODY_KEYS) + r")\s*:")


def _structured_body(body: str, name: str, cell: int | None) -> dict[str, Any] | None:
    """The body as a YAML mapping when it starts with an extract key, else None (SQL)."""
    if not _YAML_BODY_START.match(body):
        return None
    data = _yaml(body, f"extract '{name}'", name, cell)
    if not isinstance(data, dict):
        raise SpecError(
            f"The body of extract '{name}' starts like YAML but is not 'key: value' lines.",
            step=name,
            cell=cell,
        )
    return data


def _build_transform(pos: dict[str, str], opts: dict[str, Any], body: str, cell: int | None) -> Statement:
    name = pos["NAME"]
    if opts.get("python"):
        return TransformStep(name=name, python=body, cell=cell)
    return TransformStep(name=name, sql=body, cell=cell)


def check_rules(items: Any, step: str | None = None, cell: int | None = None) -> list[CheckRule]:
    """Validate a check body (a list of one-key mappings) into rules."""
    if not isinstance(items, list) or not items:
        raise SpecError(
            f"A check body is a YAML list of rules, for example '- not_null: [id]'. "
            f"Rules: {', '.join(CHECK_KINDS)}.",
            step=step,
            cell=cell,
        )
    return [_check_rule(item, step, cell) for item in items]


def _check_rule(item: Any, step: str | None, cell: int | None) -> CheckRule:
    if isinstance(item, str) and item in CHECK_KINDS:
        raise SpecError(f"Check rule '{item}' needs a value, e.g. '- {item}: ...'.", step=step, cell=cell)
    if not isinstance(item, dict) or len(item) != 1:
        raise SpecError(
            f"Each check rule is one 'kind: value' item, for example '- not_null: [id]'; got {item!r}.",
            step=step,
            cell=cell,
        )
    kind, value = next(iter(item.items()))
    if kind not in CHECK_KINDS:
        raise SpecError(
            f"Unknown check '{kind}'.{_suggest(str(kind), CHECK_KINDS)} Checks: {', '.join(CHECK_KINDS)}.",
            step=step,
            cell=cell,
        )
    try:
        return _RULE_BUILDERS[kind](value)
    except (ValueError, TypeError, ValidationError) as exc:
        detail = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise SpecError(f"Check '{kind}' on '{step}': {detail}.", step=step, cell=cell) from None


def _columns(value: Any, kind: str) -> list[str]:
    columns = [value] if isinstance(value, str) else value
    if not isinstance(columns, list) or not columns or not all(isinstance(c, str) and c for c in columns):
        raise ValueError(f"give a column or a list of columns, e.g. '{kind}: [id, email]'")
    return columns


def _accepted_values(value: Any) -> CheckRule:
    if isinstance(value, dict) and set(value) == {"column", "values"}:
        column, values = value["column"], value["values"]
    elif isinstance(value, dict) and len(value) == 1:
        column, values = next(iter(value.items()))
    else:
        raise ValueError("write 'accepted_values: {column: status, values: [paid, open]}'")
    if not isinstance(column, str) or not isinstance(values, list) or not values:
        raise ValueError("write 'accepted_values: {column: status, values: [paid, open]}'")
    return CheckRule(kind="accepted_values", columns=[column], values=values)


def _row_count(value: Any) -> CheckRule:
    if not isinstance(value, dict) or not value or set(value) - {"min", "max"}:
        raise ValueError("write 'row_count: {min: 1}' or 'row_count: {min: 1, max: 1000}'")
    for bound in value.values():
        if not isinstance(bound, int) or isinstance(bound, bool) or bound < 0:
            raise ValueError("row_count bounds are whole numbers of rows, 0 or more")
    return CheckRule(kind="row_count", min=value.get("min"), max=value.get("max"))


def _expression(value: Any) -> CheckRule:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("write a SQL condition that must hold for every row, e.g. 'expression: amount >= 0'")
    return CheckRule(kind="expression", expression=value)


_RULE_BUILDERS: dict[str, Callable[[Any], CheckRule]] = {
    "not_null": lambda v: CheckRule(kind="not_null", columns=_columns(v, "not_null")),
    "unique": lambda v: CheckRule(kind="unique", columns=_columns(v, "unique")),
    "accepted_values": _accepted_values,
    "row_count": _row_count,
    "expression": _expression,
}


def _build_check(pos: dict[str, str], opts: dict[str, Any], body: str, cell: int | None) -> Statement:
    step = pos["STEP"]
    rules = check_rules(_yaml(body, f"check '{step}'", step, cell), step, cell)
    return CheckStep(step=step, rules=rules, warn=bool(opts.get("warn")), cell=cell)


def _build_load(pos: dict[str, str], opts: dict[str, Any], body: str, cell: int | None) -> Statement:
    step = pos["STEP"]
    mode = opts.get("mode", DEFAULT_LOAD_MODE)
    if mode not in ("append", "replace", "merge"):
        raise SpecError(
            f"Unknown --mode '{mode}' for load '{step}'.{_suggest(mode, ['append', 'replace', 'merge'])} "
            "Modes: append, replace, merge.",
            step=step,
            cell=cell,
        )
    key = [k.strip() for k in str(opts.get("key", "")).split(",") if k.strip()]
    return LoadStep(
        step=step,
        to=opts["to"],
        table=opts.get("table"),
        path=opts.get("path"),
        mode=mode,
        key=key,
        dry_run=bool(opts.get("dry-run")),
        cell=cell,
    )


def _positive_int(value: Any, option: str) -> int:
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    problem = count_problem(text) if text else "it is not a number"
    if problem is None:
        return int(text)
    if "too large" in problem:
        raise SpecError(f"--{option} {problem}.")
    raise SpecError(f"--{option} must be a whole number above 0, e.g. --{option} 20.")


def _build_command(
    verb: str,
) -> Callable[[dict[str, str], dict[str, Any], str, int | None], Statement]:
    def build(pos: dict[str, str], opts: dict[str, Any], body: str, cell: int | None) -> Statement:
        options = dict(opts)
        if "limit" in options:
            options["limit"] = _positive_int(options["limit"], "limit")
        if "only" in options:
            options["only"] = [s.strip() for s in str(options["only"]).split(",") if s.strip()]
            if not options["only"]:
                raise SpecError("--only needs step names, e.g. --only orders,revenue.", cell=cell)
        if verb == "export" and options.get("to", "ipynb") not in ("py", "ipynb"):
            raise SpecError(
                f"Unknown export format '--to {options['to']}': use --to py or --to ipynb.", cell=cell
            )
        target = pos.get("STEP") or pos.get("PATH")
        return Command(verb=verb, target=target, options=options)  # type: ignore[arg-type,unused-ignore]

    return build


_BUILDERS: dict[str, Callable[[dict[str, str], dict[str, Any], str, int | None], Statement]] = {
    "connect": _build_connect,
    "extract": _build_extract,
    "transform": _build_transform,
    "check": _build_check,
    "load": _build_load,
    **{v: _build_command(v) for v in ("run", "dag", "runs", "show", "export", "reset", "params")},
}


def invalid(verb: str, name: str | None, exc: ValidationError, *, cell: int | None = None) -> SpecError:
    """The ``SpecError`` a user reads for pydantic's ``exc`` about ``verb`` ``name``: its first problem.

    ``verb`` is the grammar's verb (``extract``) or the model (``ExtractStep``)
    for the Python API.
    """
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    subject = f"{verb} '{name}'" if name else verb
    text = f"In {subject}, '{where}': {message}." if where else f"In {subject}: {message}."
    return SpecError(text, step=name, cell=cell)


def validated(model: type[_Built], **fields: Any) -> _Built:
    """``model(**fields)``, with a pydantic error turned into the ``SpecError`` a user reads."""
    try:
        return model(**fields)
    except ValidationError as exc:
        raise invalid(model.__name__, fields.get("name") or fields.get("step"), exc) from None
