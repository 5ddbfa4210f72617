"""The errors of the model server and its deployment state.

::

    FskitError
    └── ServingError              the server could not start, stop or answer as asked
        ├── DeploymentError       a deploy / promote / rollback is not possible (also a ValueError)
        └── RequestError          a client sent a bad request; carries the HTTP status
            └── UnknownModelError the request names a model or version the server does not serve
"""

from __future__ import annotations

from fskit.errors import FskitError

__all__ = ["DeploymentError", "RequestError", "ServingError", "UnknownModelError"]


class ServingError(FskitError):
    """The model server could not start, stop or answer as asked."""


class DeploymentError(ServingError, ValueError):
    """A deploy, promote or rollback is not possible in the current deployment state."""


class RequestError(ServingError, ValueError):
    """A client request is malformed; ``status`` is the HTTP status it answers with."""

    def __init__(self, message: str, *, status: int = 422, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class UnknownModelError(RequestError, LookupError):
    """The request names a model or version this server does not serve (HTTP 404)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=404, code="unknown_model")
