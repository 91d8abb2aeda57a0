"""JSON logs with the request's tracing id on every line, and no secrets.

python-json-logger does the formatting; the filter adds the tracing id and masks anything shaped
like a pwreset secret, as a last line of defence (code never logs secrets on purpose).
"""

from __future__ import annotations

import logging
import re
import sys

from pythonjsonlogger.json import JsonFormatter

from pwreset.kit.tracing import trace_id

_SECRET = re.compile(r"pwr_[a-z]+_[A-Za-z0-9_-]{8,}")


def mask_secrets(text: str) -> str:
    return _SECRET.sub(lambda m: m.group(0)[: m.group(0).index("_", 4) + 1] + "[redacted]", text)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.trace_id = trace_id.get()
        if isinstance(record.msg, str) and "pwr_" in record.msg:
            record.msg = mask_secrets(record.msg)
        if record.args:
            record.args = tuple(mask_secrets(a) if isinstance(a, str) else a for a in record.args)
        return True


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    if json:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(trace_id)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                timestamp=False,
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(trace_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's own loggers go through the same handler, except its access logger: it writes every
    # path and query string (login ids, customer ids) and the client's address. pwreset's own access
    # line (ops/access.py, PWRESET_ACCESS_LOG) writes the route template instead and is the only one,
    # however uvicorn is started (`uvicorn --factory` logs access by default).
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    access.handlers[:] = []
    access.propagate = False
    access.disabled = True
