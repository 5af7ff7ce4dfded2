"""Retries with exponential backoff: one policy for the engine and every connector.

The engine retries a connector call that raised a transient
``ConnectorError``. A connector retries its own calls with the same policy
(the HTTP client retries one page this way) and may say which errors to
retry and how long a failure itself asks to wait (an HTTP ``Retry-After``):
that wait replaces the backoff, and one longer than ``longest_asked_wait``
is not waited out.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from etl_nb.errors import ConnectorError

if TYPE_CHECKING:
    from tenacity import RetryCallState

# How long a failure asks to wait before the next try (seconds), or None to back off as usual.
AskedWait = Callable[[BaseException], float | None]


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` is worth another try: a ``ConnectorError`` marked transient."""
    return isinstance(error, ConnectorError) and error.transient


@dataclass(frozen=True)
class RetryPolicy:
    """How transient connector errors are retried: exponential backoff with jitter.

    ``attempts`` counts the first try. The wait before try n+1 is
    ``initial * 2^(n-1)`` plus up to ``jitter`` seconds, at most ``maximum``;
    a wait the failure asks for (``Retry-After``) is taken as asked, up to
    ``longest_asked_wait`` seconds, beyond which the error is raised at once.
    """

    attempts: int = 3
    initial: float = 0.5
    maximum: float = 30.0
    jitter: float = 0.5
    longest_asked_wait: float = 120.0

    def call(
        self,
        action: Callable[[], Any],
        on_retry: Callable[[BaseException, int], None] | None = None,
        *,
        retry_on: Callable[[BaseException], bool] = is_transient,
        asked_wait: AskedWait | None = None,
    ) -> Any:
        """Run ``action``, retrying the errors ``retry_on`` accepts; any other error raises at once.

        ``on_retry(error, attempt)`` is told before each wait. When the
        attempts are spent (or a failure asks to wait too long) the last
        error is raised as it was.
        """
        # Imported here: tenacity brings asyncio (and tornado when installed), about 0.1 s that
        # `import etl_nb`, `etl-nb --help` and the magics' load do not need.
        from tenacity import Retrying, retry_if_exception

        def wait(state: RetryCallState) -> float:
            return self._wait(state, asked_wait)

        def stop(state: RetryCallState) -> bool:
            if state.attempt_number >= max(1, self.attempts):
                return True
            asked = _asked(state, asked_wait)
            return asked is not None and asked > self.longest_asked_wait

        retrying = Retrying(
            stop=stop,
            wait=wait,
            retry=retry_if_exception(retry_on),
            reraise=True,
            before_sleep=(
                (lambda state: on_retry(state.outcome.exception(), state.attempt_number))  # type: ignore[union-attr,arg-type]
                if on_retry
                else None
            ),
        )
        return retrying(action)

    def _wait(self, state: RetryCallState, asked_wait: AskedWait | None = None) -> float:
        asked = _asked(state, asked_wait)
        if asked is not None:
            return asked
        # initial * 2^n plus up to `jitter` seconds, never more than `maximum` in all.
        delay = self.initial * 2.0 ** (state.attempt_number - 1) + random.uniform(0, self.jitter)
        return min(delay, self.maximum)


def _asked(state: RetryCallState, asked_wait: AskedWait | None) -> float | None:
    if asked_wait is None or state.outcome is None:
        return None
    error = state.outcome.exception()
    return None if error is None else asked_wait(error)
