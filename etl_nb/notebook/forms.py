"""Widget forms in the notebook: ``%etl params`` and a bare ``%etl connect NAME``.

``ParamsForm`` shows one field per name in the notebook's parameters cell
(a checkbox for booleans, text otherwise), filled with the value the kernel
holds now, else the cell's default. **Run** starts a recorded run of the
saved notebook with those values through ``etl_nb.runs.submit_run`` (the
same check and run as ``etl-nb run -p``), then follows it until it ends. A
mistake (an unknown name, a value that cannot take the default's type) is
shown in the form as the one sentence ``etl-nb run`` would print.

``ConnectForm`` is what ``%etl connect NAME`` without a URL shows: the kind,
the folder or URL, credentials as ``${VAR}`` names; Test opens the
connection and says what it found, Save writes the ``%etl connect`` cell
below it.

ipywidgets is imported when a form is built (it is heavy, and only a kernel
with a frontend needs it).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from html import escape
from pathlib import Path
from typing import Any

from IPython.display import display as _ipython_display
from sqlalchemy import inspect

from etl_nb._secrets import safe_url
from etl_nb.connectors.base import ConnectorContext
from etl_nb.connectors.registry import connector_class
from etl_nb.errors import EtlError, SpecError
from etl_nb.notebook.preview import Message, rows_text, seconds
from etl_nb.notebook.reader import read_notebook
from etl_nb.runs import submit_run
from etl_nb.spec import ConnectionSpec, parse_cell
from etl_nb.store import RunStore

Submit = Callable[..., str]
_POLL_SECONDS = 1.0
_FOLLOW_FOR = 6 * 3600  # a form stops following a run after this long; the run goes on


class ParamsForm:
    """The parameters cell of ``notebook`` as a form; ``run()`` is what the Run button does."""

    def __init__(
        self,
        notebook: Path,
        current: Mapping[str, Any] | None = None,
        *,
        submit: Submit = submit_run,
        store: RunStore | None = None,
        follow: bool = True,
    ) -> None:
        import ipywidgets

        self.notebook = notebook
        self.submit = submit
        self.store = store
        self.follow = follow
        declared = read_notebook(notebook)
        current = current or {}
        self.defaults = {name: declared.parameters.get(name) for name in declared.parameter_names}
        self.fields: dict[str, Any] = {}
        for name, default in self.defaults.items():
            value = current.get(name, default)
            if isinstance(default, bool):
                self.fields[name] = ipywidgets.Checkbox(value=bool(value), description=name, indent=False)
            else:
                text = "" if value is None else str(value)
                self.fields[name] = ipywidgets.Text(value=text, description=name)
        self.button = ipywidgets.Button(description="Run", button_style="primary", icon="play")
        self.button.on_click(lambda _button: self.run())
        hint = f"Runs the saved {escape(notebook.name)} as a recorded run."
        self.status = ipywidgets.HTML(value=self._note(hint))
        rows = [*self.fields.values(), ipywidgets.HBox([self.button, self.status])]
        self.widget = ipywidgets.VBox(rows)
        self.run_id: str | None = None

    def values(self) -> dict[str, Any]:
        """What Run sends: booleans as such, text as typed (typed like ``-p`` by the check)."""
        return {name: field.value for name, field in self.fields.items()}

    def run(self) -> str | None:
        """Start a recorded run with the form's values; the run id, or None if it was refused."""
        try:
            self.run_id = self.submit(self.notebook, self.values(), trigger="manual")
        except EtlError as exc:
            self.status.value = self._note(escape(exc.message), error=True)
            return None
        self.status.value = self._note(f"run {self.run_id}: queued")
        if self.follow:
            threading.Thread(target=self._follow, args=(self.run_id,), daemon=True).start()
        return self.run_id

    def show_status(self, run_id: str) -> bool:
        """Show the run's status now; whether it has ended."""
        record = (self.store or RunStore()).get_run(run_id)
        if record is None:
            return False
        parts = [f"run {record.id}: {record.status}"]
        if record.rows is not None:
            parts.append(rows_text(record.rows))
        if record.seconds is not None:
            parts.append(seconds(record.seconds))
        ended = record.status not in ("queued", "running")
        text = " · ".join(parts)
        if record.error:
            text += f" · {record.error.splitlines()[0]}"
        self.status.value = self._note(escape(text), error=record.status == "failed")
        return ended

    def _follow(self, run_id: str) -> None:
        deadline = time.monotonic() + _FOLLOW_FOR
        while time.monotonic() < deadline and not self.show_status(run_id):
            time.sleep(_POLL_SECONDS)

    @staticmethod
    def _note(text: str, *, error: bool = False) -> str:
        colour = "var(--jp-error-color1, #c00)" if error else "var(--jp-ui-font-color2, #666)"
        return f'<span style="color: {colour}">{text}</span>'


def show_params_form(
    notebook: Path | None, namespace: Mapping[str, Any], *, display: Callable[..., Any] | None = None
) -> ParamsForm | None:
    """Show ``notebook``'s parameters form (``%etl params`` in a kernel with a frontend)."""
    show: Callable[..., Any] = display or _ipython_display
    if notebook is None:
        show(Message("Save the notebook to run it from a parameters form (the form runs the saved file)."))
        return None
    try:
        form = ParamsForm(notebook, namespace)
    except EtlError as exc:
        show(Message(exc.message))
        return None
    if not form.fields:
        show(Message(f"{notebook.name} has no cell tagged 'parameters': a run takes no parameters."))
    show(form.widget)
    return form


# --- %etl connect NAME (no URL): a connection form ------------------------------------------------

KINDS = {
    "files": "a folder of files",
    "database": "a database (SQLAlchemy URL)",
    "http": "a REST API",
}
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FOUND_SHOWN = 8


class ConnectForm:
    """The form ``%etl connect NAME`` shows without a URL; ``cell()`` is the ``%etl connect`` it writes.

    Credentials are asked for as the *names* of environment variables
    (``${PGPASSWORD}``), never as values, so the cell Save writes holds no
    secret. **Test** opens the connection as a run would and says what it
    found; **Save** writes the cell below (``set_next_input``), so the
    notebook stays the source of truth.
    """

    def __init__(self, name: str, *, base_dir: Path, set_next_input: Callable[[str], Any]) -> None:
        import ipywidgets

        self.name = name
        self.base_dir = base_dir
        self.set_next_input = set_next_input
        self.kind = ipywidgets.Dropdown(options=[(v, k) for k, v in KINDS.items()], description="kind")
        self.location = ipywidgets.Text(description="folder", placeholder="./data")
        self.user_var = ipywidgets.Text(description="user var", placeholder="PGUSER")
        self.secret_var = ipywidgets.Text(description="secret var", placeholder="PGPASSWORD")
        self.test_button = ipywidgets.Button(description="Test", icon="plug")
        self.save_button = ipywidgets.Button(description="Save", button_style="primary", icon="check")
        self.status = ipywidgets.HTML()
        self.test_button.on_click(lambda _button: self.test())
        self.save_button.on_click(lambda _button: self.save())
        self.kind.observe(lambda _change: self._relabel(), names="value")
        self.widget = ipywidgets.VBox(
            [
                ipywidgets.HTML(f"<b>%etl connect {escape(name)}</b>: declare the connection"),
                self.kind,
                self.location,
                self.user_var,
                self.secret_var,
                ipywidgets.HBox([self.test_button, self.save_button]),
                self.status,
            ]
        )
        self._relabel()

    def _relabel(self) -> None:
        kind = self.kind.value
        labels = {"files": "folder", "database": "URL", "http": "base URL"}
        hints = {
            "files": "./data",
            "database": "postgresql://localhost:5432/shop",
            "http": "https://api.example.com",
        }
        self.location.description, self.location.placeholder = labels[kind], hints[kind]
        shown = "" if kind == "database" else "none"
        self.user_var.layout.display = shown
        self.secret_var.layout.display = "" if kind != "files" else "none"
        self.secret_var.description = "token var" if kind == "http" else "password var"
        self.secret_var.placeholder = "API_TOKEN" if kind == "http" else "PGPASSWORD"

    def cell(self) -> str:
        """The ``%etl connect`` (or ``%%etl connect``) cell for the values; ``SpecError`` if unusable."""
        location = self.location.value.strip()
        if not location:
            raise SpecError(f"Give the connection '{self.name}' a {self.location.description.lower()}.")
        user, secret = self._var(self.user_var), self._var(self.secret_var)
        kind = self.kind.value
        if kind == "files":
            return f"%etl connect {self.name} {location}"
        if kind == "http":
            lines = [f"%%etl connect {self.name}", f"url: {location}"]
            if secret:
                lines.append(f'auth: {{type: bearer, token: "${{{secret}}}"}}')
            return "\n".join(lines)
        return f"%etl connect {self.name} {self._database_url(location, user, secret)}"

    def _database_url(self, url: str, user: str | None, secret: str | None) -> str:
        scheme, sep, rest = url.partition("://")
        if not sep:
            raise SpecError(f"'{url}' is not a database URL: write it like postgresql://host:5432/db.")
        if "@" in rest.split("/", 1)[0]:
            userinfo = rest.split("@", 1)[0]
            if ":" in userinfo and "${" not in userinfo.split(":", 1)[1]:
                raise SpecError(
                    "Do not write the password in the URL: give the name of the environment variable "
                    "that holds it (password var), so the notebook never keeps it."
                )
            return url
        if not user and not secret:
            return url
        credentials = (f"${{{user}}}" if user else "") + (f":${{{secret}}}" if secret else "")
        return f"{scheme}://{credentials}@{rest}"

    def _var(self, field: Any) -> str | None:
        text = str(field.value).strip().removeprefix("${").removesuffix("}").lstrip("$")
        if field.layout.display == "none" or not text:
            return None
        if not _VAR_NAME.fullmatch(text):
            raise SpecError(
                f"'{field.value}' is not an environment variable name: give the name (PGPASSWORD), "
                "never the secret itself."
            )
        return text

    def test(self) -> str:
        """Open the connection as a run would and say what it found (or why it failed)."""
        try:
            text = self.cell()
            line, _, body = text.removeprefix("%%etl ").removeprefix("%etl ").partition("\n")
            statement = parse_cell(line, body or None)
            if not isinstance(statement, ConnectionSpec):
                raise SpecError("The form did not make a connection.")
            message = _probe(statement, self.base_dir)
        except EtlError as exc:
            message = exc.message
            self.status.value = ParamsForm._note(escape(message), error=True)
            return message
        self.status.value = ParamsForm._note(escape(message))
        return message

    def save(self) -> str | None:
        """Write the cell below this one; the cell text, or None when the form is not complete."""
        try:
            text = self.cell()
        except EtlError as exc:
            self.status.value = ParamsForm._note(escape(exc.message), error=True)
            return None
        self.set_next_input(text)
        self.status.value = ParamsForm._note("Written in the cell below: run it to declare the connection.")
        return text


def _probe(spec: ConnectionSpec, base_dir: Path) -> str:
    """Open ``spec``'s connector, describe what it reaches, close it."""
    connector = connector_class(spec.type)(spec, ConnectorContext(base_dir=base_dir))
    connector.open()
    try:
        folder = getattr(connector, "folder", None)
        if isinstance(folder, Path):
            if not folder.is_dir():
                return f"'{spec.url}' is not a folder ({folder}). Check the path."
            names = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
            return f"Opened the folder {folder}: {_listing(names, 'file or folder', 'files and folders')}."
        engine = getattr(connector, "engine", None)
        if engine is not None:
            # SQLAlchemy's inspector: the tables the connection sees, as a user would list them.
            tables = inspect(engine).get_table_names(schema=getattr(connector, "default_schema", None))
            return f"Connected to {safe_url(spec.url)}: {_listing(sorted(tables), 'table', 'tables')}."
        return f"Opened the {spec.type} connection {safe_url(spec.url)}."
    finally:
        connector.close()


def _listing(names: list[str], one: str, many: str) -> str:
    if not names:
        return f"no {many}"
    shown = ", ".join(names[:_FOUND_SHOWN]) + (", ..." if len(names) > _FOUND_SHOWN else "")
    return f"{len(names)} {one if len(names) == 1 else many} ({shown})"


_CONNECT_WITHOUT_URL = re.compile(r"\s*connect\s+([A-Za-z_][A-Za-z0-9_]*)\s*")


def connect_form_name(line: str, body: str | None) -> str | None:
    """The NAME of a bare ``%etl connect NAME`` (no URL, no body), which shows the form; else None."""
    match = _CONNECT_WITHOUT_URL.fullmatch(line)
    return match.group(1) if match and not (body or "").strip() else None


def show_connect_form(
    name: str,
    *,
    base_dir: Path,
    set_next_input: Callable[[str], Any],
    display: Callable[..., Any] | None = None,
) -> ConnectForm:
    """Show the connection form for ``%etl connect NAME``."""
    form = ConnectForm(name, base_dir=base_dir, set_next_input=set_next_input)
    (display or _ipython_display)(form.widget)
    return form
