"""The access log: one line per request, written without the logging module.

The logging module (record, filters, formatter, handler lock) costs about as much as a whole bearer
check; an access line has fixed fields, so it is serialised with orjson and written in one call.
Lines have the same shape as the JSON logs of ``logs.py``. They never contain a secret: only the
method, the route template (not the path, which may hold a login id), status, duration and the
tracing id.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

import orjson


class AccessLog:
    def __init__(self, *, json: bool = True, stream: TextIO | None = None) -> None:
        self.json = json
        self.stream = stream or sys.stderr

    def write(self, method: str, route: str, status: int, seconds: float, trace: str | None) -> None:
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
        millis = round(seconds * 1000, 2)
        message = f"{method} {route} {status} {millis}ms"
        if self.json:
            line = orjson.dumps(
                {
                    "time": stamp, "level": "INFO", "logger": "pwreset.access", "message": message,
                    "trace_id": trace, "status": status, "duration_ms": millis,
                }
            ).decode()
        else:
            line = f"{stamp} INFO pwreset.access [{trace}] {message}"
        self.stream.write(line + "\n")
