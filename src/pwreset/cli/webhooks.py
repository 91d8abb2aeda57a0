"""``pwreset webhooks ...``: an institution's security-event webhook (events/)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated, Any

import typer

from pwreset.container import Container
from pwreset.delivery.models import OutboxMessage
from pwreset.events import admin

webhooks_app = typer.Typer(help="Security events to the institution: set, test, log.", no_args_is_help=True)


def _main() -> Any:
    from pwreset.cli import main  # (late: main imports this module)

    return main


@webhooks_app.command("set")
def webhooks_set(
    institution_id: Annotated[str, typer.Argument()],
    url: Annotated[str | None, typer.Option("--url", help="where events are POSTed (https)")] = None,
    remove: Annotated[bool, typer.Option("--remove", help="send no more events")] = False,
    new_secret: Annotated[bool, typer.Option("--new-secret", help="replace the signing secret")] = False,
) -> None:
    """Point an institution's security events at a URL; the signing secret is printed once."""
    main = _main()
    if (url is None) == (not remove):
        raise main.CommandError("give --url, or --remove")
    settings = main._settings()

    async def work(services: Container) -> str | None:
        async with services.db.transaction() as session:
            return await admin.set_webhook(
                session, institution_id=institution_id, url=None if remove else url, sealer=services.webhook_sealer,
                clock=services.clock, sandbox=settings.sandbox, new_secret_wanted=new_secret,
            )

    secret = main._run(main._with_services(settings, work))
    typer.echo(f"institution {institution_id}: " + ("no webhook" if remove else f"events go to {url}"))
    if secret is not None:
        typer.echo(f"signing secret (shown once; verify X-Pwreset-Signature with it): {secret}")


@webhooks_app.command("test")
def webhooks_test(
    institution_id: Annotated[str, typer.Argument()],
    wait: Annotated[float, typer.Option("--wait", help="seconds to wait for a worker to deliver it")] = 30.0,
) -> None:
    """Queue a webhook.test event and wait for its delivery (a worker, or the API's own, sends it)."""
    main = _main()

    async def work(services: Container) -> OutboxMessage | None:
        async with services.db.transaction() as session:
            message_id = await admin.send_test(session, institution_id=institution_id, events=services.events)
        deadline = time.monotonic() + wait
        while True:
            async with services.db.reading() as session:
                row = await session.get(OutboxMessage, message_id)
            if row is None or row.status in ("sent", "dead") or time.monotonic() >= deadline:
                return row
            await asyncio.sleep(0.25)  # polling another process's progress

    row = main._run(main._with_services(main._settings(), work))
    if row is None or (row.status == "pending" and row.attempts == 0):
        typer.echo("queued; no worker delivered it yet (is `pwreset worker` running?)")
        raise typer.Exit(2)
    typer.echo(f"{row.status} after {row.attempts} attempt(s)" + (f": {row.last_error}" if row.last_error else ""))
    if row.status != "sent":
        raise typer.Exit(1)


@webhooks_app.command("log")
def webhooks_log(
    institution_id: Annotated[str, typer.Argument()],
    limit: Annotated[int, typer.Option("--limit", min=1)] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The latest security events sent, or being tried, with their attempts and errors."""
    main = _main()

    async def work(services: Container) -> list[dict[str, Any]]:
        async with services.db.reading() as session:
            rows = await admin.delivery_log(session, institution_id=institution_id, limit=limit)
            return [
                {"messageId": r.id, "event": (services.outbox.open(r).variables.get("event") or {}).get("type"),
                 "status": r.status, "attempts": r.attempts, "createdAt": r.created_at.isoformat(),
                 "sentAt": r.sent_at.isoformat() if r.sent_at else None, "lastError": r.last_error,
                 "host": r.destination_masked}
                for r in rows
            ]

    rows = main._run(main._with_services(main._settings(), work))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        typer.echo(f"{row['createdAt']}\t{row['event']}\t{row['status']}\t{row['attempts']}\t{row['lastError'] or ''}")
