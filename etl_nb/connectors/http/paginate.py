"""Pagination styles: how an extract asks a REST API for its next page.

Each style of ``paginate: {type: ...}`` is one ``Paginator`` subclass,
listed in ``PAGINATORS``. To add a style, write a subclass here (its
``options`` with their defaults, an ``example``, any extra ``check``, and
``first_params``/``next_params``) and add it to ``PAGINATORS``: nothing
else changes. ``max_pages:`` fits every style and is counted by the walk.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx

from etl_nb.connectors.http.records import dig
from etl_nb.errors import ConnectorError, SpecError
from etl_nb.spec import ExtractStep

# Options that take a whole number, with their smallest value.
_WHOLE_NUMBERS = {"size": 1, "start": 0, "max_pages": 1}
# Options that name a query parameter or a field of the answer.
_NAMES = ("param", "size_param", "next")


@dataclass(frozen=True)
class Page:
    """One answer as a paginator sees it, after its records were read."""

    number: int  # 1 for the first page
    rows: int
    response: httpx.Response
    body: Any = None  # the parsed JSON, for styles that set ``reads_body``


@dataclass(frozen=True)
class NextPage:
    """Where the next page is.

    ``params`` are added to the extract's ``path:`` and ``params:``; a
    ``url`` (from a ``Link`` header, say) replaces both, since it carries its
    own query.
    """

    params: dict[str, Any] = field(default_factory=dict)
    url: str | None = None


class Paginator:
    """One pagination style. An instance walks one extract once, so it may keep state between pages.

    ``options`` are the keys the style takes, with their defaults;
    ``reads_body`` asks for each page's parsed JSON (a cursor lives in it),
    which turns off the faster Polars parser.
    """

    type: ClassVar[str]
    options: ClassVar[dict[str, Any]] = {}
    example: ClassVar[str]
    reads_body: ClassVar[bool] = False

    def __init__(self, step: str, values: Mapping[str, Any]) -> None:
        self.step = step
        self.max_pages: int | None = values.get("max_pages")

    @classmethod
    def validate(cls, step: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """The style's options from a ``paginate:`` body (without ``type:``), defaults filled in.

        Raises ``SpecError`` naming the bad key and what the style takes.
        """
        allowed = ("type", *cls.options, "max_pages")
        unknown = sorted(str(k) for k in set(body) - set(allowed))
        if unknown:
            raise SpecError(
                f"Extract '{step}': 'paginate:' of type {cls.type} has an unknown key '{unknown[0]}'; "
                f"it takes {', '.join(allowed)}.",
                step=step,
            )
        values = {**cls.options, **body}
        for key, smallest in _WHOLE_NUMBERS.items():
            _check_whole_number(step, key, values.get(key), smallest)
        for key in _NAMES:
            value = values.get(key)
            if key in cls.options and value is not None and (not isinstance(value, str) or not value):
                raise SpecError(
                    f"Extract '{step}': 'paginate: {key}' must be a name, not {value!r}.", step=step
                )
        if "param" in cls.options and not values.get("param"):
            raise SpecError(f"Extract '{step}': 'paginate:' of type {cls.type} needs 'param:'.", step=step)
        cls.check(step, values)
        return values

    @classmethod
    def check(cls, step: str, values: Mapping[str, Any]) -> None:
        """Raise ``SpecError`` for anything more this style needs; the common checks are done."""

    def first_params(self) -> dict[str, Any]:
        """The query parameters the style adds to the first request."""
        return {}

    def next_params(self, page: Page) -> NextPage | None:
        """Where the page after ``page`` is, or None when the walk is over."""
        return None


class NoPaginator(Paginator):
    """``{type: none}``: one request."""

    type = "none"
    example = "{type: none}"


class _CountingPaginator(Paginator, ABC):
    """A position sent as ``param`` (and the page size as ``size_param``), moved on after each page."""

    def __init__(self, step: str, values: Mapping[str, Any]) -> None:
        super().__init__(step, values)
        self.param: str = values["param"]
        self.size_param: str | None = values.get("size_param")
        self.size: int | None = values.get("size")
        self.position: int = values.get("start") or 0

    def first_params(self) -> dict[str, Any]:
        """The start position, and the page size."""
        return self._query()

    def next_params(self, page: Page) -> NextPage | None:
        """The next position: the API says nothing about it, so every page is followed by one more."""
        self.position = self.advance(page)
        return NextPage(self._query())

    @abstractmethod
    def advance(self, page: Page) -> int:
        """The position after ``page``."""

    def _query(self) -> dict[str, Any]:
        query: dict[str, Any] = {self.param: self.position}
        if self.size_param:
            query[self.size_param] = self.size
        return query


class PagePaginator(_CountingPaginator):
    """``{type: page}``: page numbers, from ``start``."""

    type = "page"
    options: ClassVar[dict[str, Any]] = {"param": "page", "size_param": "per_page", "size": 100, "start": 1}
    example = "{type: page, param: page, size_param: per_page, size: 100, start: 1}"

    def advance(self, page: Page) -> int:
        """The next page number."""
        return self.position + 1


class OffsetPaginator(_CountingPaginator):
    """``{type: offset}``: a record offset that grows by the records received.

    Counting what came (not ``size``) reads everything from an API that caps
    the page size lower than asked.
    """

    type = "offset"
    options: ClassVar[dict[str, Any]] = {"param": "offset", "size_param": "limit", "size": 100, "start": 0}
    example = "{type: offset, param: offset, size_param: limit, size: 100}"

    def advance(self, page: Page) -> int:
        """The offset past the records of ``page``."""
        return self.position + page.rows


class CursorPaginator(Paginator):
    """``{type: cursor}``: each answer holds the next cursor at the dot path ``next``."""

    type = "cursor"
    options: ClassVar[dict[str, Any]] = {"param": "cursor", "next": None}
    example = "{type: cursor, param: cursor, next: meta.next_cursor}"
    reads_body = True

    def __init__(self, step: str, values: Mapping[str, Any]) -> None:
        super().__init__(step, values)
        self.param: str = values["param"]
        self.next: str = values["next"]
        self.cursor: Any = None

    @classmethod
    def check(cls, step: str, values: Mapping[str, Any]) -> None:
        """Cursor paging needs ``next:``."""
        if not values.get("next"):
            raise SpecError(
                f"Extract '{step}': cursor paging needs 'next:', the dot path to the next cursor in each "
                "answer, e.g. {type: cursor, param: cursor, next: meta.next_cursor}.",
                step=step,
            )

    def next_params(self, page: Page) -> NextPage | None:
        """The cursor the page gives; the walk ends when there is none."""
        following = dig(page.body, self.next)
        if following is None or following == "":
            return None
        if following == self.cursor:
            raise ConnectorError(
                f"Extract '{self.step}': page {page.number} gives the same cursor as the page "
                f"before ({following!r}), so paging would never end. Check 'next: {self.next}'.",
                step=self.step,
            )
        self.cursor = following
        return NextPage({self.param: following})


class LinkPaginator(Paginator):
    """``{type: link}``: follows the ``Link: <url>; rel="next"`` header (relative links resolved)."""

    type = "link"
    example = "{type: link}"

    def __init__(self, step: str, values: Mapping[str, Any]) -> None:
        super().__init__(step, values)
        self.seen: set[str] = set()

    def next_params(self, page: Page) -> NextPage | None:
        """The next link's URL; the walk ends when the answer has none."""
        link = page.response.links.get("next", {}).get("url")
        if not link:
            return None
        url = str(page.response.url.join(link))
        if url in self.seen:
            raise ConnectorError(
                f"Extract '{self.step}': the Link header of page {page.number} points back to "
                f"{url}, so paging would never end.",
                step=self.step,
            )
        self.seen.add(url)
        return NextPage(url=url)


# Every style by its ``type:``, in the order the messages and docs list them.
PAGINATORS: dict[str, type[Paginator]] = {
    cls.type: cls for cls in (PagePaginator, OffsetPaginator, CursorPaginator, LinkPaginator, NoPaginator)
}


def paginator_for(extract: ExtractStep) -> Paginator:
    """A fresh paginator for the extract's ``paginate:`` body; a ``SpecError`` names the styles if bad."""
    name = extract.name
    body = dict(extract.paginate or {"type": "none"})
    style = body.pop("type", None)
    cls = PAGINATORS.get(style) if isinstance(style, str) else None
    if cls is None:
        what = "needs a 'type:'" if style is None else f"has an unknown type '{style}'"
        examples = ", ".join(c.example for c in PAGINATORS.values())
        raise SpecError(
            f"Extract '{name}': 'paginate:' {what}. Styles: {', '.join(PAGINATORS)}, e.g. {examples}.",
            step=name,
        )
    return cls(name, cls.validate(name, body))


def _check_whole_number(step: str, key: str, value: Any, smallest: int) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < smallest):
        raise SpecError(
            f"Extract '{step}': 'paginate: {key}' must be a whole number of at least {smallest}, "
            f"not {value!r}.",
            step=step,
        )
