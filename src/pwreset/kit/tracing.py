"""The request's tracing id (``correlationId`` or ``transactionId``), for logs and audit events."""

from __future__ import annotations

from contextvars import ContextVar

trace_id: ContextVar[str | None] = ContextVar("pwreset_trace_id", default=None)
