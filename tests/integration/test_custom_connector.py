"""docs/connectors.md "Write a connector": its example runs as written, via the entry point and register()."""

from __future__ import annotations

import importlib
import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from etl_nb import Pipeline
from etl_nb.connectors import connector_class, registry

DOC = Path(__file__).resolve().parents[2] / "docs" / "connectors.md"


def _blocks(language: str) -> list[str]:
    section = DOC.read_text().split("## Write a connector", 1)[1]
    return re.findall(rf"```{language}\n(.*?)```", section, re.DOTALL)


@pytest.fixture(autouse=True)
def clean_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Each test registers 'arrows' its own way; none may see another's.
    monkeypatch.setattr(registry, "_registered", dict(registry._registered))
    yield
    sys.modules.pop("etl_nb_arrows", None)


@pytest.fixture
def feeds(tmp_path: Path) -> Path:
    folder = tmp_path / "feeds"
    folder.mkdir()
    table = pa.table({"id": [1, 2, 3], "kind": ["click", "view", "click"]})
    with pa.ipc.new_stream(folder / "events.arrows", table.schema) as out:
        out.write_table(table)
    return folder


def _installed_package(root: Path) -> None:
    """The doc's connector as an installed package whose entry point is the doc's pyproject line."""
    (root / "etl_nb_arrows.py").write_text(_blocks("python")[0])
    [toml] = _blocks("toml")
    group, line = re.search(r'\[project\.entry-points\."(.+?)"\]\n(.+)', toml).groups()  # type: ignore[union-attr]
    name, value = (part.strip().strip('"') for part in line.split("="))
    info = root / "etl_nb_arrows-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: etl_nb_arrows\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{name} = {value}\n")
    importlib.invalidate_caches()


def _registered_in_code() -> dict[str, Any]:
    """The doc's code blocks run one after the other in one namespace, as notebook cells would."""
    module = types.ModuleType("etl_nb_arrows")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    for code in _blocks("python"):
        exec(compile(code, str(DOC), "exec"), module.__dict__)
    return module.__dict__


def _read(path: Path) -> list[dict[str, Any]]:
    with pa.ipc.open_stream(path) as reader:
        return reader.read_all().to_pylist()


def _pipeline(feeds: Path) -> Pipeline:
    p = Pipeline("feeds", base_dir=feeds.parent, store=f"sqlite:///{feeds.parent / 'store.db'}")
    p.connect("feeds", "./feeds", type="arrows")
    p.extract("events", source="feeds", path="events.arrows")
    return p


def test_a_connector_installed_through_the_entry_point_reads_and_writes(
    feeds: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    _installed_package(site)
    monkeypatch.syspath_prepend(str(site))
    assert connector_class("arrows").__module__ == "etl_nb_arrows"
    p = _pipeline(feeds)
    p.transform("clicks", sql="SELECT id FROM events WHERE kind = 'click'")
    p.load("clicks", to="feeds", path="clicks.arrows", mode="replace")
    result = p.run().raise_for_status()
    assert result.steps["load:clicks:feeds:clicks.arrows"].rows == 2
    assert _read(feeds / "clicks.arrows") == [{"id": 1}, {"id": 3}]


def test_a_connector_registered_in_code_streams_an_extract_straight_into_its_load(feeds: Path) -> None:
    namespace = _registered_in_code()
    assert connector_class("arrows") is namespace["ArrowStreams"]
    p = _pipeline(feeds)
    p.load("events", to="feeds", path="copy.arrows", mode="replace")
    result = p.run().raise_for_status()
    assert result.steps["events"].rows == 3  # streamed, never stored: its batches are counted
    assert _read(feeds / "copy.arrows") == _read(feeds / "events.arrows")


def test_a_failed_run_leaves_the_example_connectors_target_as_it_was(feeds: Path) -> None:
    _registered_in_code()
    p = _pipeline(feeds)
    p.load("events", to="feeds", path="copy.arrows", mode="replace")
    p.run().raise_for_status()
    before = (feeds / "copy.arrows").read_bytes()
    p.check("events", [{"row_count": {"min": 10}}])
    assert p.run().status == "failed"
    assert (feeds / "copy.arrows").read_bytes() == before
    assert sorted(f.name for f in feeds.iterdir()) == ["copy.arrows", "events.arrows"]


def test_the_example_refuses_a_load_it_cannot_take_with_a_sentence(feeds: Path) -> None:
    _registered_in_code()
    p = _pipeline(feeds)
    p.load("events", to="feeds", path="copy.arrows", mode="append")
    result = p.run()
    assert result.status == "failed"
    assert result.error == "Load 'events': use --path FILE.arrows with --mode replace."
