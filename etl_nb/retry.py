"""Retries with exponential backoff: one policy for the engine and every connector.

The engine retries a connector call that raised a transient
``ConnectorError``; the HTTP client uses the same policy and lets a server's
``Retry-After`` answer stretch the wait.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from etl_nb.errors import ConnectorError


@dataclass(frozen=True)
class RetryPolicy:
    """How transient connector errors are retried: exponential backoff with jitter."""

    attempts: int = 3
    initial: float = 0.5
    maximum: float = 30.0
    jitter: float = 0.5

    def call(
        self,
        action: Callable[[], Any],
        on_retry: Callable[[BaseException, int], None] | None = None,
    ) -> Any:
        """Run ``action``, retrying transient ``ConnectorError``s; permanent errors raise at once."""
        retrying = Retrying(
            stop=stop_after_attempt(max(1, self.attempts)),
            wait=self._wait,
            retry=retry_if_exception(lambda e: isinstance(e, ConnectorError) and e.transient),
            reraise=True,
            before_sleep=(
                (lambda state: on_retry(state.outcome.exception(), state.attempt_number))  # type: ignore[union-attr,arg-type]
                if on_retry
                else None
            ),
        )
        return retrying(action)

    def _wait(self, state: RetryCallState) -> float:
        # initial * 2^n plus up to `jitter` seconds, never more than `maximum` in all.
        delay = self.initial * 2.0 ** (state.attempt_number - 1) + random.uniform(0, self.jitter)
        return min(delay, self.maximum)
