"""The one JSON error shape: `{"error": "<code>", "detail": "<what to do about it>"}`."""

from __future__ import annotations

from starlette.responses import JSONResponse


def json_error(
    status: int, code: str, detail: str, *, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)
