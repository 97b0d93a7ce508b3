"""RFC 9457 problem documents: every error the HTTP side of the bus answers with.

A client must be able to act on an error without reading our logs: each problem says what went
wrong (``title``), the details (``detail``), and, for a bad request, which field and why
(``errors``: a JSON Pointer into the request and the reason, one per problem found), so that a
batch of faults can be fixed in one round trip.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True)
class FieldError:
    #: A JSON Pointer into the request (``/data/email``, ``/events/3/type``), or a header's name.
    pointer: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"pointer": self.pointer, "reason": self.reason}


@dataclass
class Problem(Exception):
    """Raised anywhere in a request: the app's handler answers it as a problem document."""

    status: int
    title: str
    detail: str
    errors: Sequence[FieldError] = ()
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(f"{self.status} {self.title}: {self.detail}")

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "about:blank", "title": self.title, "status": self.status}
        body["detail"] = self.detail
        if self.errors:
            body["errors"] = [error.to_json() for error in self.errors]
        return body

    def response(self) -> JSONResponse:
        headers = dict(self.headers)
        return JSONResponse(self.to_json(), status_code=self.status, media_type=PROBLEM_JSON, headers=headers)


def problem(status: int, title: str, detail: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """A problem document as a response, for a route that returns rather than raises it."""
    return Problem(status, title, detail, headers=headers or {}).response()


class FieldErrorModel(BaseModel):
    pointer: str = Field(description="JSON Pointer into the request body, or the name of a header")
    reason: str


class ProblemModel(BaseModel):
    """The OpenAPI description of a problem document (RFC 9457)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[FieldErrorModel] | None = None


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the problem documents a route may answer."""
    return {status: _problem_response(status) for status in statuses}


def problems_as_sent(document: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI document whose problem responses say what is sent. FastAPI puts a response model's
    schema under the route's media type (``application/json``, ``text/html`` for a page) whatever
    the entry's ``content`` says; a problem is sent as ``application/problem+json`` only, with its
    response's status in ``status``."""
    for path in document.get("paths", {}).values():
        for operation in path.values():
            for status, response in operation.get("responses", {}).items():
                if PROBLEM_JSON in response.get("content", {}):
                    sent = {"properties": {"status": {"const": int(status)}}}
                    response["content"] = {PROBLEM_JSON: {"schema": {"allOf": [{"$ref": _PROBLEM_REF}, sent]}}}
    return document


def _problem_response(status: int) -> dict[str, Any]:
    description = _DESCRIPTIONS.get(status, "problem")
    headers = {"headers": _HEADERS[status]} if status in _HEADERS else {}
    return {"description": description, "model": ProblemModel, "content": {PROBLEM_JSON: {}}, **headers}


_DESCRIPTIONS = {
    400: "the request is malformed",
    401: "no valid token",
    403: "the token lacks a scope",
    404: "not found",
    409: "a request with the same idempotency key is still being processed",
    413: "the body is larger than allowed",
    415: "unsupported content type",
    422: "the request names a field with a problem",
    429: "rate limit reached; retry after the Retry-After seconds",
    503: "a dependency (broker, database, lag sampler) is not available",
}

#: Where FastAPI puts ProblemModel's schema (the "model" of every problem response).
_PROBLEM_REF = "#/components/schemas/ProblemModel"
_SECONDS = {"type": "integer", "minimum": 1}
_TEXT = {"type": "string"}
_RETRY_AFTER = {"description": "seconds to wait before retrying", "schema": _SECONDS}
_CHALLENGE = {"description": "the Bearer challenge (RFC 6750)", "schema": {"type": "string", "pattern": "^Bearer"}}
#: The headers each problem is sent with (the OpenAPI document declares them, so that they are checked).
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {**_CHALLENGE, "required": True}},
    403: {"WWW-Authenticate": {**_CHALLENGE, "required": True}},
    409: {"Retry-After": {**_RETRY_AFTER, "required": True}},
    415: {"Accept-Post": {"description": "the media types the route takes", "required": True, "schema": _TEXT}},
    429: {"Retry-After": {**_RETRY_AFTER, "required": True}},
    503: {"Retry-After": _RETRY_AFTER},
}
