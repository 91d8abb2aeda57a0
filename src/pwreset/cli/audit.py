"""``pwreset audit ...``: the audit trail's evidence (audit/chain.py, decision 0012).

``seal`` seals what waits (every worker does it every few seconds); ``verify`` checks a chain and exits
1 when it was tampered with; ``export`` streams a range as JSON lines or CEF to a file or stdout;
``purge`` deletes what is past the retention and was exported.
"""

from __future__ import annotations

import contextlib
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import typer

from pwreset.audit.chain import NO_INSTITUTION, cef, jsonl
from pwreset.container import Container

audit_app = typer.Typer(help="The audit trail: seal, verify, export, purge.", no_args_is_help=True)

#: Findings ``verify`` prints one by one (a chain rewritten wholesale would otherwise print a line per event).
SHOWN = 100
_INSTITUTION = typer.Option("--institution", help=f"the institution's chain ({NO_INSTITUTION!r}: events of none)")


def _main() -> Any:
    from pwreset.cli import main  # (late: main imports this module)

    return main


def _when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _main().CommandError(f"{option} {value!r}: use a date or a time, like 2026-01-31 or "
                                   "2026-01-31T12:00:00Z") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@audit_app.command("seal")
def audit_seal(
    every: Annotated[float | None, typer.Option(
        "--every", help="keep sealing, every this many seconds, until SIGTERM (a sealer without delivery)")] = None,
) -> None:
    """Seal every chain's waiting events now (workers also do it every few seconds)."""
    import asyncio
    import signal

    main = _main()

    async def work(services: Container) -> int:
        if every is None:
            return await services.audit_chain.seal()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        sealed = 0
        while not stop.is_set():
            sealed += await services.audit_chain.seal()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)
        return sealed

    typer.echo(f"{main._run(main._with_services(main._settings(), work))} events sealed")


@audit_app.command("verify")
def audit_verify(
    institution: Annotated[str, _INSTITUTION],
    seal_first: Annotated[bool, typer.Option("--seal/--no-seal", help="seal waiting events before checking")] = False,
) -> None:
    """Check a chain: every event against its mac, every seal against its events and the seal before."""
    main = _main()

    async def work(services: Container) -> Any:
        if seal_first:
            await services.audit_chain.seal(chain=institution)
        return await services.audit_chain.verify(institution)

    report = main._run(main._with_services(main._settings(), work))
    typer.echo(f"chain {report.chain}: {report.seals} seals ({report.purged_seals} purged), {report.events} events "
               f"checked, {report.unsealed} waiting for a seal")
    typer.echo(f"head: seal {report.head_seq} {report.head_digest}")
    if report.oldest_unsealed is not None:
        typer.echo(f"oldest unsealed event: {report.oldest_unsealed.isoformat()}")
    for finding in report.findings[:SHOWN]:
        typer.echo(f"TAMPERED {finding}", err=True)
    if len(report.findings) > SHOWN:
        typer.echo(f"TAMPERED and {len(report.findings) - SHOWN} findings more", err=True)
    if not report.intact:
        raise typer.Exit(1)
    typer.echo("intact")


@audit_app.command("export")
def audit_export(
    institution: Annotated[str, _INSTITUTION],
    since: Annotated[str | None, typer.Option("--since", help="from this time (default: the first event)")] = None,
    until: Annotated[str | None, typer.Option("--until", help="up to this time, excluded (default: now)")] = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl or cef")] = "jsonl",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="a file (default: stdout)")] = None,
) -> None:
    """Stream a chain's events, in bounded memory, and record the export (``purge`` needs it)."""
    from pwreset import __version__

    main = _main()
    if fmt not in ("jsonl", "cef"):
        raise main.CommandError("--format must be jsonl or cef")
    start = _when(since, "--since") or datetime(1970, 1, 1, tzinfo=UTC)
    end = _when(until, "--until") or datetime.now(UTC)
    if end <= start:
        raise main.CommandError("--until must come after --since")

    async def work(services: Container, sink: BinaryIO) -> int:
        started = services.clock.now()
        events = 0
        async for row in services.audit_chain.export(institution, since=start, until=end):
            sink.write(jsonl(row) if fmt == "jsonl" else cef(row, version=__version__))
            events += 1
        sink.flush()
        await services.audit_chain.record_export(institution, since=start, until=end, fmt=fmt, events=events,
                                                 started_at=started)
        return events

    async def run(services: Container) -> int:
        if output is None:
            return await work(services, sys.stdout.buffer)
        with output.open("wb") as sink:
            return await work(services, sink)

    events = main._run(main._with_services(main._settings(), run))
    typer.echo(f"{events} events exported", err=True)


@audit_app.command("purge")
def audit_purge(
    institution: Annotated[str, _INSTITUTION],
    force: Annotated[bool, typer.Option("--force", help="also delete what no export covered")] = False,
) -> None:
    """Delete events older than PWRESET_AUDIT_RETENTION_DAYS (never younger), whole seals at a time."""
    main = _main()
    settings = main._settings()

    async def work(services: Container) -> Any:
        return await services.audit_chain.purge(institution, retention_days=settings.audit_retention_days,
                                                force=force)

    purged = main._run(main._with_services(settings, work))
    typer.echo(f"{purged.events} events purged ({purged.seals} seals)")
    if purged.tampered:
        typer.echo(f"{purged.tampered} seals past retention were kept: they do not verify (run audit verify)",
                   err=True)
    if purged.uncovered:
        typer.echo(f"{purged.uncovered} seals past retention were kept: no export covers them "
                   "(export them, or --force)", err=True)
