"""``pwreset portal ...``: the institution staff's side of the developer portal, from the command line.

The same service functions as the staff pages (portal/service.py); each command is one transaction.
"""

from __future__ import annotations

import getpass
import json
from typing import Annotated, Any

import typer

from pwreset.container import Container
from pwreset.portal.service import StaffView

portal_app = typer.Typer(help="The developer portal: staff, developers, organisations, access requests.",
                         no_args_is_help=True)


def _main() -> Any:
    from pwreset.cli import main  # (late: main imports this module)

    return main


def _staff_view() -> StaffView:
    main = _main()

    async def work(services: Container) -> StaffView:
        async with services.db.transaction() as session:
            return await services.portal.staff_view(session, None)

    return main._run(main._with_services(main._settings(), work))  # type: ignore[no-any-return]


def _out(rows: list[dict[str, Any]], as_json: bool, columns: list[str]) -> None:
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    for row in rows:
        typer.echo("  ".join(str(row[c]) if row[c] is not None else "-" for c in columns))


@portal_app.command("staff")
def staff(
    email: Annotated[str, typer.Argument(help="a developer who has signed up")],
    revoke: Annotated[bool, typer.Option("--revoke", help="take the staff role back")] = False,
) -> None:
    """Give a developer the staff role (staff pages also need their two-factor authentication)."""
    main = _main()

    async def work(services: Container) -> str:
        async with services.db.transaction() as session:
            developer = await services.portal.set_staff(session, email=email, staff=not revoke)
            return developer.email

    who = main._run(main._with_services(main._settings(), work))
    typer.echo(f"{who} is {'no longer' if revoke else 'now'} staff")


@portal_app.command("developers")
def developers(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Developers, newest first: email, name, verified, two-factor, staff."""
    rows = [{"email": d.email, "name": d.name, "verified": d.verified_at is not None,
             "twoFactor": d.totp_enabled_at is not None, "staff": d.staff} for d in _staff_view().developers]
    _out(rows, as_json, ["email", "name", "verified", "twoFactor", "staff"])


@portal_app.command("organisations")
def organisations(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Organisations: id, sandbox institution, members, apps, name."""
    rows = [{"id": o.id, "sandbox": o.sandbox_institution_id, "members": m, "apps": a, "name": o.name}
            for o, m, a in _staff_view().organisations]
    _out(rows, as_json, ["id", "sandbox", "members", "apps", "name"])


@portal_app.command("requests")
def requests(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Production access requests, pending first: id, status, app, organisation, requester."""
    rows = [{"id": r.id, "status": r.status, "app": app, "organisation": org, "requestedBy": email,
             "purpose": r.purpose, "decidedBy": r.decided_by} for r, app, org, email in _staff_view().requests]
    _out(rows, as_json, ["id", "status", "app", "organisation", "requestedBy"])


@portal_app.command("interest")
def interest(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Watchlist interest, newest first: API, developer, email, organisation, when."""
    rows = [{"api": api, "developer": name, "email": email, "organisation": org, "at": when}
            for api, name, email, org, when in _staff_view().interest]
    _out(rows, as_json, ["api", "developer", "email", "organisation", "at"])


def _operator() -> str:
    """Who ran the command, for the audit trail."""
    try:
        return "cli:" + getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def _decide(request_id: str, approve: bool, note: str, scopes: str | None = None) -> str:
    main = _main()

    async def work(services: Container) -> str:
        async with services.db.transaction() as session:
            decided = await services.portal.decide(
                session, request_id=request_id, approve=approve, by=_operator(), note=note,
                scopes=scopes.split() if scopes is not None else None,
            )
            return decided.status

    return main._run(main._with_services(main._settings(), work))  # type: ignore[no-any-return]


@portal_app.command("approve")
def approve(request_id: Annotated[str, typer.Argument()],
            note: Annotated[str, typer.Option("--note")] = "",
            scopes: Annotated[str | None, typer.Option("--scopes", help="grant only these (space-separated)")] = None,
            ) -> None:
    """Approve a production access request: the app gets its production twin, the developer an email."""
    typer.echo(f"request {request_id} {_decide(request_id, True, note, scopes)}")


@portal_app.command("reset-two-factor")
def reset_two_factor(email: Annotated[str, typer.Argument()]) -> None:
    """Take two-factor authentication off a developer who lost both the app and the recovery codes (check who
    they are first); their sessions end."""
    main = _main()

    async def work(services: Container) -> str:
        async with services.db.transaction() as session:
            return (await services.portal.reset_two_factor(session, email=email, by=_operator())).email

    typer.echo(f"two-factor authentication is off for {main._run(main._with_services(main._settings(), work))}")


@portal_app.command("deny")
def deny(request_id: Annotated[str, typer.Argument()],
         note: Annotated[str, typer.Option("--note", help="the reason, sent to the developer")] = "") -> None:
    """Deny a production access request (the developer is told, with the note)."""
    typer.echo(f"request {request_id} {_decide(request_id, False, note)}")
