"""The HTTP client of one REST API connection: its options, its auth, and one GET with retries.

``open_client`` checks the connect body, resolves its ``${VAR}`` secrets and
makes an ``ApiClient``: one ``httpx.Client`` carrying the base URL, headers,
auth and timeout. ``ApiClient.get`` fetches one page:

- the query is the path's own, then the connection's ``params:``, then the
  extract's;
- redirects are followed, but a credential header (``Authorization``, an
  ``auth:`` header, a ``headers:`` entry that is a secret) goes only to the
  host and port it was set for;
- 429 and 5xx answers, timeouts and dropped connections are retried with
  ``etl_nb.retry.RetryPolicy``, honouring ``Retry-After``, so a long walk
  resumes at the page that failed; when ``max_retries`` is spent the error
  is a transient ``ConnectorError`` and the engine's retry policy takes over;
- every other failure is one sentence naming the step and what to check.

httpx logs each request's URL, query and all: those lines are masked like
etl_nb's own, so an ``api_key`` in the query never reaches a log.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import logging
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx

from etl_nb._logging import _RedactingFilter, get_logger
from etl_nb._masking import remember
from etl_nb._secrets import references, resolve
from etl_nb.errors import ConnectorError, SpecError
from etl_nb.retry import RetryPolicy
from etl_nb.spec import ConnectionSpec

CONNECT_KEYS = ("headers", "auth", "timeout", "max_retries", "params")
AUTH_TYPES: dict[str, tuple[str, ...]] = {
    "bearer": ("token",),
    "basic": ("username", "password"),
    "header": ("name", "value"),
}
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 3
# Headers that carry a credential whatever the connection says.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
# Loggers of httpx and httpcore that write URLs or headers.
LIBRARY_LOGGERS = (
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)
SNIPPET = 80

# Resolves the ``${VAR}`` references in a text; True also masks the text itself from then on.
Secret = Callable[[str, bool], str]


def _mask_library_logs() -> None:
    # These loggers are not under "etl_nb", so its filter never sees them; a logger's own filter
    # runs before its records reach any handler, the root's included.
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactingFilter) for f in logger.filters):
            logger.addFilter(_RedactingFilter())


_mask_library_logs()


@dataclass(frozen=True)
class Settings:
    """A connect body, checked, with its ``${VAR}`` references resolved."""

    connection: str
    base_url: str
    headers: dict[str, str]
    params: dict[str, str]
    # Lower-cased names of the headers that must not follow a redirect to another host or port.
    credentials: frozenset[str]
    timeout: float
    max_retries: int


def open_client(spec: ConnectionSpec, env_file: Path | None) -> ApiClient:
    """The client for connection ``spec``.

    Raises ``SpecError`` for a bad connect body, ``MissingSecret`` for an unset ``${VAR}``.
    """
    return ApiClient(settings(spec, env_file))


def settings(spec: ConnectionSpec, env_file: Path | None) -> Settings:
    """The connect body of ``spec`` checked and resolved."""
    name = spec.name
    options = dict(spec.options)
    unknown = sorted(str(k) for k in set(options) - set(CONNECT_KEYS))
    if unknown:
        raise SpecError(
            f"Unknown key '{unknown[0]}' in connection '{name}' (a REST API). "
            f"Keys: url, {', '.join(CONNECT_KEYS)}.",
            step=name,
        )

    def secret(text: str, remember_literal: bool = False) -> str:
        value = resolve(text, env_file, connection=name)
        if remember_literal:  # a token written in clear is still a secret
            remember(value)
        return value

    base_url = secret(spec.url)
    headers, credentials = _headers(options.get("headers"), name, secret)
    params = {
        str(k): secret(str(v), _sensitive(str(k)))
        for k, v in _mapping(options.get("params"), "params", name).items()
    }
    auth = _auth_headers(options.get("auth"), name, secret)
    headers.update(auth)
    credentials |= {k.lower() for k in auth}
    _refuse_control_characters(headers, name)
    timeout = _number(options.get("timeout", DEFAULT_TIMEOUT), "timeout", name, minimum=0.001)
    retries = _number(options.get("max_retries", DEFAULT_MAX_RETRIES), "max_retries", name, minimum=0)
    return Settings(name, base_url, headers, params, frozenset(credentials), timeout, int(retries))


def _refuse_control_characters(headers: dict[str, str], connection: str) -> None:
    """Refuse a header holding a control character before it is sent.

    httpx would refuse it too, but with the value in its message: a token with
    a trailing newline would then be shown in clear. Name the header, never the value.
    """
    for key, value in headers.items():
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in key + value):
            raise SpecError(
                f"Connection '{connection}': the value of header '{key}' holds a control character "
                "(a line break at the end of a token?); remove it.",
                step=connection,
            )


def _headers(body: Any, connection: str, secret: Secret) -> tuple[dict[str, str], set[str]]:
    """The headers of a ``headers:`` body, and the lower-cased names of those that are credentials.

    A header is a credential when its name says so (auth, token, key, ...) or
    its value is a ``${VAR}``; ``Authorization`` and ``Cookie`` always are.
    """
    headers = {"Accept": "application/json"}
    credentials = set(CREDENTIAL_HEADERS)
    for key, value in _mapping(body, "headers", connection).items():
        text, sensitive = str(value), _sensitive(str(key))
        headers[str(key)] = secret(text, sensitive)
        if sensitive or references(text):
            credentials.add(str(key).lower())
    return headers, credentials


def _auth_headers(auth: Any, connection: str, secret: Secret) -> dict[str, str]:
    """The headers an ``auth:`` body sends (each one a credential)."""
    if auth is None:
        return {}
    kinds = ", ".join(AUTH_TYPES)
    if not isinstance(auth, Mapping) or auth.get("type") not in AUTH_TYPES:
        raise SpecError(
            f"Connection '{connection}': 'auth:' needs a type, one of {kinds}: "
            "{type: bearer, token: ${API_TOKEN}}, {type: basic, username: ..., password: ...} "
            "or {type: header, name: X-API-Key, value: ${API_KEY}}.",
            step=connection,
        )
    kind = str(auth["type"])
    needed = AUTH_TYPES[kind]
    missing = [k for k in needed if auth.get(k) in (None, "")]
    extra = sorted(str(k) for k in set(auth) - {"type", *needed})
    if missing or extra:
        problem = f"lacks '{missing[0]}'" if missing else f"has an unknown key '{extra[0]}'"
        raise SpecError(
            f"Connection '{connection}': auth of type {kind} {problem}; it takes {', '.join(needed)}.",
            step=connection,
        )
    values = {k: secret(str(auth[k]), k != "username") for k in needed}
    if kind == "bearer":
        return {"Authorization": f"Bearer {values['token']}"}
    if kind == "header":
        return {values["name"]: values["value"]}
    # Basic auth as a plain header (what httpx.BasicAuth sends), so a redirect drops it like any other.
    pair = base64.b64encode(f"{values['username']}:{values['password']}".encode()).decode("ascii")
    remember(pair)
    return {"Authorization": f"Basic {pair}"}


class _Retryable(Exception):
    """A page worth asking for again: a 429 or 5xx answer, a timeout, a dropped connection."""

    def __init__(self, problem: str, retry_after: float | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.retry_after = retry_after


class ApiClient:
    """One connection's ``httpx.Client``, and how it GETs a page."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.retry = RetryPolicy(attempts=settings.max_retries + 1)
        self.log = get_logger(connection=settings.connection)
        # Redirects are followed in _send, which decides which headers may go along.
        self.http = httpx.Client(
            base_url=settings.base_url,
            headers=settings.headers,
            timeout=settings.timeout,
            follow_redirects=False,
            verify=_ssl_context(),
        )

    def close(self) -> None:
        """Close the pooled connections."""
        self.http.close()

    def get(self, step: str, url: str, params: Mapping[str, Any], number: int) -> httpx.Response:
        """GET page ``number`` of ``url`` for extract ``step``, retrying what is worth retrying."""
        request = self._request(step, url, params)
        tries = 0

        def attempt() -> httpx.Response:
            nonlocal tries
            tries += 1
            return self._attempt(step, request, number)

        try:
            response: httpx.Response = self.retry.call(
                attempt,
                lambda error, n: self._log_retry(step, error, n),
                retry_on=lambda error: isinstance(error, _Retryable),
                asked_wait=lambda error: error.retry_after if isinstance(error, _Retryable) else None,
            )
        except _Retryable as exc:
            raise self._given_up(step, exc, tries) from None
        return response

    def _request(self, step: str, url: str, params: Mapping[str, Any]) -> httpx.Request:
        try:
            # httpx replaces a URL's query with params=, so merge them: the path's own query (or a
            # next link's), then the connection's params:, then the extract's.
            query = httpx.QueryParams(httpx.URL(url).params).merge(self.settings.params).merge(params)
            return self.http.build_request("GET", url, params=query or None)
        except httpx.InvalidURL as exc:
            raise ConnectorError(
                f"Extract '{step}': '{url}' is not a valid URL ({exc}). Check 'path:' and the URL "
                f"of connection '{self.settings.connection}'.",
                step=step,
            ) from None

    def _attempt(self, step: str, request: httpx.Request, number: int) -> httpx.Response:
        """One try: the answer if it is good, else ``_Retryable`` or a ``ConnectorError`` saying why."""
        where = str(request.url)
        try:
            response = self._send(request)
        except httpx.TimeoutException:
            raise _Retryable(
                f"timed out after {self.settings.timeout:g}s waiting for page {number} of "
                f"{where}. Raise 'timeout:' in connection '{self.settings.connection}' "
                "or check that the API is healthy"
            ) from None
        except httpx.ConnectError as exc:
            # A refused connection or an unknown host is rarely fixed by waiting here:
            # let the engine's retry policy decide.
            raise ConnectorError(
                f"Extract '{step}': cannot reach {where} ({_reason(exc)}). Check the URL "
                f"of connection '{self.settings.connection}' and that the API is up.",
                step=step,
                transient=True,
            ) from None
        except httpx.TransportError as exc:
            raise _Retryable(f"lost the connection to {where} on page {number} ({_reason(exc)})") from None
        except httpx.TooManyRedirects:
            raise ConnectorError(
                f"Extract '{step}': {where} redirects more than {self.http.max_redirects} times "
                f"on page {number}. Check 'path:' and the connection's URL.",
                step=step,
            ) from None
        status = response.status_code
        if status < 400:
            return response
        if status != 429 and status < 500:
            raise _client_error(step, response, number)
        response.close()
        raise _Retryable(
            f"{where} answered {status} {response.reason_phrase} on page {number}", _retry_after(response)
        )

    def _send(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``, following redirects; credentials stay with the host and port they were for."""
        response = self.http.send(request)
        hops = 0
        while response.next_request is not None:
            following = response.next_request
            response.close()
            hops += 1
            if hops > self.http.max_redirects:
                raise httpx.TooManyRedirects("Exceeded maximum allowed redirects.", request=following)
            if not _same_place(request.url, following.url):
                for name in self.settings.credentials:
                    following.headers.pop(name, None)
            request = following
            response = self.http.send(request)
        return response

    def _log_retry(self, step: str, error: BaseException, attempt: int) -> None:
        problem = error.problem if isinstance(error, _Retryable) else str(error)
        self.log.warning("retrying a page", step=step, attempt=attempt, problem=problem)

    def _given_up(self, step: str, error: _Retryable, tries: int) -> ConnectorError:
        """The error once a page is not asked for again: tries spent, or a Retry-After too long."""
        if tries < self.retry.attempts and error.retry_after is not None:
            return ConnectorError(
                f"Extract '{step}': {error.problem} and asks to wait {error.retry_after:.0f}s (Retry-After), "
                f"longer than etl_nb waits inside a run ({self.retry.longest_asked_wait:.0f}s). "
                "Run it again later.",
                step=step,
                transient=True,
            )
        spent = f"{tries} tries" if tries > 1 else "1 try"
        return ConnectorError(
            f"Extract '{step}': {error.problem} ({spent}, max_retries: {self.settings.max_retries}).",
            step=step,
            transient=True,
        )


def _same_place(origin: httpx.URL, target: httpx.URL) -> bool:
    """Whether a redirect from ``origin`` to ``target`` keeps the credentials.

    It does to the same host and port, unless it leaves https for http.
    """
    if origin.scheme == "https" and target.scheme != "https":
        return False
    return origin.host == target.host and _port(origin) == _port(target)


def _port(url: httpx.URL) -> int | None:
    return url.port or {"http": 80, "https": 443}.get(url.scheme)


@cache
def _ssl_context() -> ssl.SSLContext:
    """One verifying SSL context per process: loading the CA bundle costs ~50 ms per client."""
    return httpx.create_ssl_context()


def snippet(response: httpx.Response) -> str:
    """The start of an answer's body, on one line, for an error message."""
    text = " ".join(response.text.split())
    if not text:
        return "an empty body"
    return repr(text[:SNIPPET] + ("..." if len(text) > SNIPPET else ""))


def _reason(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text or exc.__class__.__name__


def _client_error(step: str, response: httpx.Response, number: int) -> ConnectorError:
    status = response.status_code
    url = response.request.url
    if status in (401, 403):
        fix = (
            "Check the connection's 'auth:' (token, username and password, or header) and that the "
            "variable its ${VAR} names holds a valid secret"
        )
        if status == 403:
            fix += ", with access to this path"
        return ConnectorError(
            f"Extract '{step}': {url} answered {status} {response.reason_phrase}. {fix}.", step=step
        )
    if status == 404:
        return ConnectorError(
            f"Extract '{step}': {url} answered 404 Not Found on page {number}. Check 'path:' "
            "and the connection's base URL.",
            step=step,
        )
    return ConnectorError(
        f"Extract '{step}': {url} answered {status} {response.reason_phrase} on page {number}: "
        f"{snippet(response)}. Check 'params:' and 'path:'.",
        step=step,
    )


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds the answer asks to wait (``Retry-After`` as seconds or an HTTP date), or None."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def _sensitive(name: str) -> bool:
    # Credentials written in clear (a header, a query parameter such as api_key) are masked
    # like ${VAR} values; an API version is not.
    lowered = name.lower()
    return any(word in lowered for word in ("auth", "token", "key", "secret", "cookie", "password"))


def _mapping(value: Any, key: str, connection: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(
            f"Connection '{connection}': '{key}:' must be 'name: value' pairs, not {value!r}.",
            step=connection,
        )
    return value


def _number(value: Any, key: str, connection: str, *, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise SpecError(
            f"Connection '{connection}': '{key}:' must be a number of at least {minimum:g}, not {value!r}.",
            step=connection,
        )
    return float(value)
