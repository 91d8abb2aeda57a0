"""An app factory for server-process tests: the real app plus the bearer-protected probe routes."""

from starlette.types import ASGIApp

from pwreset.app import create_app
from pwreset.config import Settings
from pwreset.ops.logs import configure_logging
from tests.support import PROBE_OPERATIONS


def probe_app() -> ASGIApp:
    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return create_app(settings, extra_operations=PROBE_OPERATIONS)
