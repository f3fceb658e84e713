"""The errors a request can end in: ApiError from validation, and what converging a change can say.

The store validates and raises ApiError; the API turns the exception into the contract's error body.
Keeping the HTTP code on the exception means validation rules live in one place (the store)
and the web layer never re-guesses what went wrong. The runtime raises ChangeRefused or
NotConfirmed about a change it converged, and BudgetExceeded about one it would not send at all;
the API words them for the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

HTTP_CODES = (400, 401, 404, 409, 422, 503)


def error_body(code: int, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The contract's JSON body of every error response, whatever raised it."""
    return {"error": {"code": code, "message": message, "details": details or []}}


class ApiError(Exception):
    """A request failure with its HTTP code and details naming the offending fields."""

    def __init__(self, code: int, message: str, details: list[dict[str, Any]] | None = None) -> None:
        if code not in HTTP_CODES:
            raise ValueError(f"ApiError code must be one of {HTTP_CODES}, not {code}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or []

    def body(self) -> dict[str, Any]:
        """The JSON body of the error response."""
        return error_body(self.code, self.message, self.details)

    @classmethod
    def invalid(cls, field: str, message: str) -> ApiError:
        """400 for one bad field; the message repeats the field so a bare one-line print is enough."""
        return cls(400, f"{field}: {message}", [{"field": field, "message": message}])

    @classmethod
    def not_found(cls, kind: str, ident: str, field: str | None = None) -> ApiError:
        detail = {"field": field} if field else {}
        return cls(404, f"{kind} {ident} not found", [{**detail, "message": f"no {kind} with id {ident}"}])

    @classmethod
    def conflict(cls, field: str, message: str) -> ApiError:
        return cls(409, f"{field}: {message}", [{"field": field, "message": message}])


@dataclass(frozen=True)
class RefusedFlow:
    """A flow a switch refused, described for the person whose change it was."""

    dpid: str
    table: str
    priority: int
    match: dict[str, Any]
    owner: str | None
    error: str

    def __str__(self) -> str:
        return (f"switch {self.dpid} refused flow table={self.table} priority={self.priority} match={self.match} "
                f"of {self.owner or 'an unknown owner'}: {self.error}")


class ChangeRefused(Exception):
    """A switch refused flows the change introduced: it was rolled back and the switches put back."""

    def __init__(self, refused: list[RefusedFlow]) -> None:
        super().__init__("; ".join(map(str, refused[:3])))
        self.refused = refused


@dataclass(frozen=True)
class OverBudget:
    """A switch whose compiled flows a change would take past the flow budget (--max-flows-per-switch)."""

    dpid: str
    flows: int   # what the switch would have needed
    budget: int

    def __str__(self) -> str:
        return f"switch {self.dpid} would need {self.flows} flows, over the budget of {self.budget} per switch"


class BudgetExceeded(Exception):
    """A change would take switches past the flow budget: it was rolled back before any switch saw it."""

    def __init__(self, over: list[OverBudget]) -> None:
        super().__init__("; ".join(map(str, over)))
        self.over = over


class NotConfirmed(Exception):
    """The change is kept, but switches it affects did not confirm its flows (they are retried)."""

    def __init__(self, result: Any, failures: dict[str, str]) -> None:
        super().__init__(", ".join(f"{dpid} ({reason})" for dpid, reason in sorted(failures.items())))
        self.result = result
        self.failures = failures
