"""The one error type the API's handlers turn into an HTTP answer."""

from __future__ import annotations


class ApiError(Exception):
    """A request the API refuses: an HTTP status and one sentence saying what to do."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
