"""``pwreset``: migrations, tenants, partner clients, the server and the sandbox.

Every command is thin: parse, open one unit of work, call a service, print. Bad input gets one
clear line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, BinaryIO, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.cli.audit import audit_app
from pwreset.cli.page import page_app
from pwreset.cli.portal import portal_app
from pwreset.cli.webhooks import webhooks_app
from pwreset.config import ConfigurationError, Settings
from pwreset.container import Container, build_container
from pwreset.db import Database, redacted_url
from pwreset.errors import PwresetError
from pwreset.institutions import service as institutions
from pwreset.portal.errors import PortalError

T = TypeVar("T")

app = typer.Typer(
    name="pwreset", help="Self-hosted password reset service.", no_args_is_help=True,
    pretty_exceptions_enable=False, add_completion=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
institutions_app = typer.Typer(help="Institutions (tenants).", no_args_is_help=True)
clients_app = typer.Typer(help="Partner applications and their credentials.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(institutions_app, name="institutions")
app.add_typer(clients_app, name="clients")
customers_app = typer.Typer(help="The customer directory.", no_args_is_help=True)
app.add_typer(customers_app, name="customers")
outbox_app = typer.Typer(help="Queued messages: inspect, retry, purge.", no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")
templates_app = typer.Typer(help="An institution's own message texts (Jinja2).", no_args_is_help=True)
app.add_typer(templates_app, name="templates")
keys_app = typer.Typer(help="The server's secret key.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(portal_app, name="portal")
app.add_typer(audit_app, name="audit")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(page_app, name="page")


class CommandError(Exception):
    """A problem to report on one line."""


def _settings(*, sandbox: bool = False, **overrides: Any) -> Settings:
    try:
        return Settings.for_sandbox(**overrides) if sandbox else Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = "PWRESET_" + str(first["loc"][0]).upper() if first.get("loc") else "settings"
        raise CommandError(f"{field}: {first['msg']}") from None


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # (uvicorn[standard] brings it, except on Windows)
        return asyncio.run(coro)
    return uvloop.run(coro)


async def _with_services(settings: Settings, work: Callable[[Container], Awaitable[T]]) -> T:
    services = build_container(settings)
    try:
        return await work(services)
    finally:
        await services.close()


async def _in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """One unit of work on the database alone (no secret key needed)."""
    db = Database(settings.database_url)
    try:
        async with db.transaction() as session:
            return await work(session)
    finally:
        await db.dispose()


async def _on_database(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    db = Database(settings.database_url)
    try:
        return await work(db)
    finally:
        await db.dispose()


def _echo_json(value: object) -> None:
    typer.echo(json.dumps(value, indent=2))


# keys


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new secret key (48 random bytes, base64url) for PWRESET_SECRET_KEY."""
    from pwreset.kit.keys import generate

    typer.echo(generate())


# db


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration (PWRESET_DATABASE_URL)."""
    from pwreset.migrate import upgrade

    settings = _settings()
    upgrade(settings.database_url)
    typer.echo(f"database at {redacted_url(settings.database_url)} is up to date")


# institutions


@institutions_app.command("create")
def institutions_create(
    institution_id: Annotated[str, typer.Argument(help="The contract's institutionId, e.g. 07675")],
    name: Annotated[str, typer.Option("--name", help="Display name, used in messages to customers")],
) -> None:
    """Create an institution."""
    from pwreset.kit.clock import Clock

    settings = _settings()

    async def work(session: AsyncSession) -> None:
        await institutions.create_institution(session, institution_id=institution_id, name=name, clock=Clock())

    _run(_in_transaction(settings, work))
    typer.echo(f"institution {institution_id} created")


@institutions_app.command("set")
def institutions_set(
    institution_id: Annotated[str, typer.Argument()],
    name: Annotated[str | None, typer.Option("--name")] = None,
    min_password_length: Annotated[
        int | None, typer.Option("--min-password-length", help="shortest new password accepted (8 to 64)")
    ] = None,
    mask_contact_info: Annotated[
        bool | None, typer.Option("--mask-contact-info/--show-contact-info", help="mask contactInfo in the API")
    ] = None,
    recovery_assurance: Annotated[str | None, typer.Option(
        "--recovery-assurance", help="single (one passcode) or two_channel (two, on different channels)")] = None,
    password_factor: Annotated[str | None, typer.Option(
        "--password-factor", help="single (the password alone: 15 characters at least) or multi (8)")] = None,
    contact_line: Annotated[str | None, typer.Option(
        "--contact-line", help="the number a customer calls when a notice was not them ('' removes it)")] = None,
    contact_cooloff: Annotated[str | None, typer.Option(
        "--contact-cooloff", help="how long a changed destination gets no reset passcode, like 7d or 48h")] = None,
    sim_swap_check: Annotated[bool | None, typer.Option(
        "--sim-swap-check/--no-sim-swap-check", help="ask the carrier (CAMARA) before a passcode goes to a phone")
    ] = None,
    sim_swap_max_age: Annotated[int | None, typer.Option(
        "--sim-swap-max-age", help="hours: a SIM swapped more recently refuses phone channels (1 to 2400)")] = None,
) -> None:
    """Change an institution's settings."""
    from pwreset.kit.clock import Clock

    settings = _settings()

    async def work(session: AsyncSession) -> None:
        await institutions.configure_institution(
            session, institution_id=institution_id, clock=Clock(), name=name,
            min_password_length=min_password_length, mask_contact_info=mask_contact_info,
            recovery_assurance=recovery_assurance, password_factor=password_factor, contact_line=contact_line,
            contact_cooloff=(
                None if contact_cooloff is None
                else int(_duration(contact_cooloff, option="--contact-cooloff", zero=True).total_seconds())
            ),
            sim_swap_check=sim_swap_check, sim_swap_max_age=sim_swap_max_age,
        )

    _run(_in_transaction(settings, work))
    typer.echo(f"institution {institution_id} updated")


@institutions_app.command("list")
def institutions_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List institutions."""
    settings = _settings()

    async def work() -> list[dict[str, str]]:
        db = Database(settings.database_url)
        try:
            async with db.reading() as session:
                rows = await institutions.list_institutions(session)
                return [{"institutionId": r.id, "name": r.name, "createdAt": r.created_at.isoformat()} for r in rows]
        finally:
            await db.dispose()

    rows = _run(work())
    if as_json:
        _echo_json(rows)
        return
    for row in rows:
        typer.echo(f"{row['institutionId']}\t{row['name']}")


# clients


def _client_json(client: Any, secret: str | None = None) -> dict[str, Any]:
    body = {
        "sharedKey": client.shared_key,
        "institutionId": client.institution_id,
        "scopes": client.scopes,
    }
    if secret is not None:
        body = {"sharedKey": client.shared_key, "secretKey": secret, **body}
    return body


def _print_credentials(client: Any, secret: str, as_json: bool) -> None:
    if as_json:
        _echo_json(_client_json(client, secret))
        return
    typer.echo(f"shared key:  {client.shared_key}")
    typer.echo(f"secret key:  {secret}")
    typer.echo(f"institution: {client.institution_id}")
    typer.echo(f"scopes:      {client.scopes}")
    typer.echo("The secret key is shown once; only its keyed hash is stored.", err=True)


@clients_app.command("create")
def clients_create(
    institution: Annotated[str, typer.Option("--institution", help="institutionId the client acts for")],
    scopes: Annotated[str, typer.Option("--scopes", help='space-separated, e.g. "institution-users:read"')],
    name: Annotated[str | None, typer.Option("--name")] = None,
    grant_types: Annotated[
        str | None, typer.Option("--grant-types", help="space-separated; default: all three grants")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Register a partner application; prints its shared key and secret key once."""
    settings = _settings()

    async def work(services: Container) -> Any:
        async with services.db.transaction() as session:
            return await services.oauth.create_client(
                session, institution_id=institution, scope=scopes, name=name, grant_types=grant_types
            )

    created = _run(_with_services(settings, work))
    _print_credentials(created.client, created.secret_key, as_json)


@clients_app.command("rotate")
def clients_rotate(
    shared_key: Annotated[str, typer.Argument()],
    revoke_tokens: Annotated[
        bool, typer.Option("--revoke-tokens", help="also revoke every token issued to the client")
    ] = False,
    grace: Annotated[
        str | None,
        typer.Option("--grace", help="keep the old secret key working this long (like 24h or 7d; at most 30d)"),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="rotate with --grace although a previous secret's grace is running")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Replace a client's secret key (at once, or after --grace); prints the new one once."""
    settings = _settings()
    overlap = _duration(grace, option="--grace") if grace is not None else timedelta(0)

    async def work(services: Container) -> Any:
        async with services.db.transaction() as session:
            return await services.oauth.rotate_client_secret(
                session, shared_key=shared_key, revoke_tokens=revoke_tokens, grace=overlap, force=force
            )

    rotated = _run(_with_services(settings, work))
    until = rotated.client.previous_secret_expires_at
    if as_json:
        shown = _client_json(rotated.client, rotated.secret_key)
        if until is not None:
            shown["previousSecretKeyValidUntil"] = until.isoformat()
        _echo_json(shown)
        return
    _print_credentials(rotated.client, rotated.secret_key, as_json)
    typer.echo(f"the previous secret key works until {until.isoformat()}" if until is not None
               else "the previous secret key is refused from now on")


@clients_app.command("set")
def clients_set(
    shared_key: Annotated[str, typer.Argument()],
    trust_originating_ip: Annotated[bool, typer.Option(
        "--trust-originating-ip/--no-trust-originating-ip",
        help="record the end customer's address the partner names in the originating_ip header")],
) -> None:
    """Change what a partner application is trusted with (from its next token on)."""
    settings = _settings()

    async def work(services: Container) -> None:
        async with services.db.transaction() as session:
            await services.oauth.set_trusted_origin(session, shared_key=shared_key, trusted=trust_originating_ip)

    _run(_with_services(settings, work))
    typer.echo(f"client {shared_key}: originating_ip {'trusted' if trust_originating_ip else 'ignored'} "
               "on tokens issued from now on")


@clients_app.command("revoke")
def clients_revoke(shared_key: Annotated[str, typer.Argument()]) -> None:
    """Revoke a client and every token issued to it."""
    settings = _settings()

    async def work(services: Container) -> None:
        async with services.db.transaction() as session:
            await services.oauth.revoke_client(session, shared_key=shared_key)

    _run(_with_services(settings, work))
    typer.echo(f"client {shared_key} revoked; its tokens stop working within {settings.revocation_bound:g} s")


@clients_app.command("list")
def clients_list(
    institution: Annotated[str | None, typer.Option("--institution")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List partner applications (never their secrets)."""
    settings = _settings()

    async def work(services: Container) -> list[dict[str, Any]]:
        async with services.db.reading() as session:
            rows = await services.oauth.list_clients(session, institution_id=institution)
            return [
                {
                    **_client_json(r),
                    "name": r.name,
                    "grantTypes": r.grant_types,
                    "createdAt": r.created_at.isoformat(),
                    "revoked": r.revoked_at is not None,
                }
                for r in rows
            ]

    rows = _run(_with_services(settings, work))
    if as_json:
        _echo_json(rows)
        return
    for row in rows:
        state = "revoked" if row["revoked"] else "active"
        typer.echo(f"{row['sharedKey']}\t{row['institutionId']}\t{state}\t{row['name']}\t{row['scopes']}")


# customers


@customers_app.command("import")
def customers_import(
    source: Annotated[str, typer.Argument(help="a .jsonl or .csv file, or - for standard input")],
    institution: Annotated[str, typer.Option("--institution")],
    fmt: Annotated[
        str | None, typer.Option("--format", help="jsonl or csv (default: from the file name; jsonl for -)")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="validate every line, write nothing")] = False,
    prune: Annotated[
        bool,
        typer.Option("--prune", help="delete the institution's customers absent from the file (a full refresh); "
                                     "skipped if any line is refused"),
    ] = False,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", min=0, help="processes validating a large file (default: one per core, at most 4; "
                                           "0: this process)"),
    ] = None,
) -> None:
    """Load customers (contract section 10): upsert by customer id; bad lines are reported, not written."""
    from pwreset.customers.importer import Importer, read_records
    from pwreset.customers.lines import settle_gc

    fmt = (fmt or ("csv" if source.lower().endswith(".csv") else "jsonl")).lower()
    if fmt not in ("jsonl", "csv"):
        raise CommandError("--format is jsonl or csv")
    if dry_run and prune:
        raise CommandError("--prune cannot be evaluated in a --dry-run")
    settings = _settings()

    async def work(services: Container) -> Any:
        settle_gc()
        importer = Importer(
            db=services.db, hashing=services.hashing, clock=services.clock, oauth=services.oauth, jobs=jobs
        )
        handle, size = _text_source(source)
        with _Progress(handle, size) as progress:
            return await importer.run(
                read_records(handle, fmt=fmt), institution_id=institution, dry_run=dry_run, prune=prune,
                progress=progress.update,
            )

    try:
        report = _run(_with_services(settings, work))
    except KeyboardInterrupt:
        typer.echo("interrupted: nothing was written" if dry_run else
                   "interrupted: the batches written so far are committed; import the same file again to finish",
                   err=True)
        sys.exit(130)
    for number, reason in report.refused:
        typer.echo(f"line {number}: {reason}", err=True)
    if report.dry_run:
        typer.echo(f"dry run: {report.total} customers read: {report.valid} valid, {len(report.refused)} refused; "
                   "nothing written")
    else:
        typer.echo(
            f"{report.total} customers read: {report.created} created, {report.updated} updated, "
            f"{report.unchanged} unchanged, {len(report.refused)} refused"
        )
    if prune:
        if report.prune_skipped:
            typer.echo("--prune skipped: the file had refused lines (or none valid); nobody was deleted", err=True)
        else:
            typer.echo(f"{report.pruned} customers absent from the file deleted (their tokens revoked)")
    if report.refused:
        raise typer.Exit(1)


#: Byte-order marks of the encodings a spreadsheet may save "Unicode text" in.
_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe", "UTF-16"),
         (b"\xfe\xff", "UTF-16"))


def _text_source(source: str) -> tuple[Any, int | None]:
    """The import's input as UTF-8 text, and its size; one clear line for anything else.

    A file is checked whole before a line is read (UTF-16 and UTF-32 by their byte-order mark, a
    binary file by its NUL bytes, anything else that is not UTF-8 by the first byte that is not), so
    nothing is written from a file that cannot be read to the end. Standard input cannot be read
    twice: its lines that are not UTF-8 are refused one by one (``lines.NOT_UTF8``).
    """
    if source == "-":
        stream = sys.stdin.buffer
        _check_head(stream.peek(4096)[:4096] if hasattr(stream, "peek") else b"", "standard input")
        return io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline=""), None
    try:
        raw = open(source, "rb")  # noqa: SIM115
    except OSError as exc:
        raise CommandError(f"cannot read {source}: {exc.strerror}") from None
    try:
        _check_head(raw.read(4096), source)
        raw.seek(0)
        _check_utf8(raw, source)
        raw.seek(0)
    except BaseException:
        raw.close()
        raise
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""), os.fstat(raw.fileno()).st_size


def _check_head(head: bytes, name: str) -> None:
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            raise CommandError(f"{name} is {encoding} text; save it as UTF-8 (nothing was imported)")
    nuls = head.count(b"\x00")
    if nuls and (nuls * 100 > len(head) or not _utf8_prefix(head)):
        raise CommandError(f"{name} looks binary (it holds NUL bytes), not a JSON Lines or CSV file "
                           "(nothing was imported)")


def _utf8_prefix(head: bytes) -> bool:
    """Whether ``head`` (the start of a file, maybe cut inside a character) is UTF-8."""
    import codecs

    try:
        codecs.getincrementaldecoder("utf-8")().decode(head)
    except UnicodeDecodeError:
        return False
    return True


def _check_utf8(raw: BinaryIO, name: str) -> None:
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    while chunk := raw.read(1 << 20):
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            bad = chunk[exc.start]
            line += chunk.count(b"\n", 0, exc.start)
            raise CommandError(
                f"{name} is not UTF-8 text: byte 0x{bad:02x} on line {line} (Latin-1 or Windows-1252?); save it "
                "as UTF-8 (nothing was imported)"
            ) from None
        line += chunk.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise CommandError(f"{name} is not UTF-8 text: it ends inside a character (nothing was imported)") from None


class _Progress:
    """A progress bar on a terminal (rich); elsewhere a plain line every few seconds, on stderr."""

    def __init__(self, handle: Any, size: int | None) -> None:
        self.handle = handle
        self.size = size
        self.tty = sys.stderr.isatty()
        self.last = 0.0
        self.started = 0.0
        self.bar: Any = None
        self.task: Any = None

    def __enter__(self) -> _Progress:
        self.started = self.last = time.monotonic()
        if self.tty:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("importing"), BarColumn(), TextColumn("{task.fields[lines]:,} lines"),
                TimeElapsedColumn(), TimeRemainingColumn(), transient=True, console=None,
            )
            self.bar.start()
            self.task = self.bar.add_task("import", total=self.size, lines=0)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
        if self.size is not None:  # (a file; standard input stays open)
            self.handle.close()

    def position(self) -> int:
        """Bytes of the file read so far, as far as its buffer (close enough for progress; counting
        every line's bytes as it went by cost 2 µs a line)."""
        try:
            return os.lseek(self.handle.fileno(), 0, os.SEEK_CUR)
        except (OSError, ValueError):
            return 0

    def update(self, report: Any) -> None:
        now = time.monotonic()
        if self.bar is not None:
            self.bar.update(self.task, completed=self.position() if self.size else None, lines=report.total)
            return
        if now - self.last >= 5:
            self.last = now
            rate = report.total / max(now - self.started, 1e-9)
            share = f" ({100 * self.position() / self.size:.0f} % of the file)" if self.size else ""
            typer.echo(f"progress: {report.total:,} lines{share}, {rate:,.0f} lines/s, "
                       f"{len(report.refused)} refused", err=True)


@customers_app.command("export")
def customers_export(
    institution: Annotated[str, typer.Option("--institution")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="file to write (default: stdout)")] = None,
    with_secrets: Annotated[
        bool, typer.Option("--with-secrets", help="include password hashes (keep the file as safe as the database)")
    ] = False,
) -> None:
    """The institution's directory as JSON Lines in the import format (contract section 10)."""
    import orjson

    from pwreset.customers.exporter import export

    settings = _settings()

    async def work(db: Database) -> int:
        count = 0
        out: BinaryIO
        if output is not None:  # readable by its owner only: it may hold password hashes
            out = os.fdopen(os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")
        else:
            out = sys.stdout.buffer
        try:
            async for record in export(db, institution_id=institution, with_secrets=with_secrets):
                out.write(orjson.dumps(record) + b"\n")
                count += 1
        finally:
            if output is not None:
                out.close()
            else:
                out.flush()
        return count

    async def run() -> int:
        db = Database(settings.database_url)
        try:
            return await work(db)
        finally:
            await db.dispose()

    count = _run(run())
    typer.echo(f"{count} customers exported", err=True)


@customers_app.command("show")
def customers_show(
    customer_id: Annotated[str, typer.Argument()],
    institution: Annotated[str, typer.Option("--institution")],
) -> None:
    """A customer's profile and contact methods, as the API shows them (JSON)."""
    from pwreset.customers import service as customers
    from pwreset.customers.views import profile_view

    settings = _settings()

    async def work(services: Container) -> dict[str, object]:
        async with services.db.reading() as session:
            customer = await customers.find_customer(session, institution_id=institution, user_id=customer_id)
            view = profile_view(customer)
            view["customerId"] = customer.customer_id
            view["hasPassword"] = bool(customer.password_hash)
            return view

    _echo_json(_run(_with_services(settings, work)))


# serving


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1)] = 1,
) -> None:
    """Run the API with uvicorn (settings from PWRESET_* variables)."""
    import uvicorn

    from pwreset.kit.clock import Clock
    from pwreset.ops.deployment import claim

    settings = _settings()
    settings.check_secret_key()  # refuse before forking workers
    settings.check_delivery()
    _run(_on_database(settings, lambda db: claim(db, sandbox=False, clock=Clock())))
    if settings.metrics_port is not None:
        _serve_metrics(settings.metrics_host, settings.metrics_port)
    from pwreset.ops.server import GuardedHttpToolsProtocol

    uvicorn.run(
        "pwreset.app:create_app_from_env", factory=True, host=host, port=port, workers=workers,
        # The app looks through PWRESET_TRUSTED_PROXIES itself (app.py), however it is served.
        log_config=None, access_log=False, server_header=False, proxy_headers=False,
        http=GuardedHttpToolsProtocol,
    )


def _serve_metrics(host: str, port: int) -> None:
    """/metrics on its own port, from this process (with --workers, PROMETHEUS_MULTIPROC_DIR collects
    every worker's figures: docs/operations.md)."""
    from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, start_http_server

    registry = REGISTRY
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise CommandError(f"cannot serve metrics on {host}:{port}: {exc.strerror}") from None


@app.command("sandbox")
def sandbox(
    port: Annotated[int, typer.Option("--port")] = 8000,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
) -> None:
    """A demo on a SQLite file in this directory: migrated, seeded, and served."""
    import uvicorn

    from pwreset import sandbox as sb
    from pwreset.app import create_app
    from pwreset.migrate import upgrade
    from pwreset.ops.deployment import claim
    from pwreset.ops.logs import configure_logging

    here = Path.cwd()
    settings = _settings(
        database_url=f"sqlite:///{here / sb.DATABASE_FILE}", secret_key=sb.sandbox_key(here), sandbox=True,
        portal_institution_id=sb.INSTITUTION_ID, public_url=f"http://{host}:{port}",
        portal_representative_email=sb.REPRESENTATIVE,
    )
    upgrade(settings.database_url)

    async def claim_and_seed(services: Container) -> sb.SandboxCredentials:
        await claim(services.db, sandbox=True, clock=services.clock)
        return await sb.seed(services)

    try:
        credentials = _run(_with_services(settings, claim_and_seed))
    except sb.SandboxSeedFailed as exc:
        typer.echo(f"pwreset sandbox: {exc}", err=True)
        raise typer.Exit(1) from None
    base = f"http://{host}:{port}"
    demo = "\n".join(
        f"  {c.customer_id}  login {c.login_id!r:11} password {c.password!r}  host user {sb.host_user_id(n)}  "
        f"{c.protocol} method {c.method_id}"
        for n, c in enumerate(sb.DEMO_CUSTOMERS, 1)
    )
    typer.echo(
        f"""
pwreset sandbox (database: {here / sb.DATABASE_FILE})

  institution:  {credentials.institution_id} ({sb.INSTITUTION_NAME})
  shared key:   {credentials.shared_key}
  secret key:   {credentials.secret_key}
  scopes:       {credentials.scopes}

Get a token:

  curl -s -X POST {base}/oauth2/v1/token \\
    -u '{credentials.shared_key}:{credentials.secret_key}' \\
    -H 'transactionId: 4f1c2d3e-5a6b-4c7d-8e9f-0a1b2c3d4e5f' -H 'institutionId: {credentials.institution_id}' \\
    -d grant_type=client_credentials

Demo customers (messages are printed here by the console provider, passcodes included):

{demo}

Ask for a passcode (with the token from above in $TOKEN):

  curl -s -X PUT {base}/v1/customers/{sb.DEMO_CUSTOMERS[0].customer_id}:reset-password \\
    -H "Authorization: Bearer $TOKEN" -H 'correlationId: 0f8fad5b-d9cb-469f-a165-70867728950e' \\
    -H 'Content-Type: application/json' -d '{{"contactMethodId": "{sb.DEMO_CUSTOMERS[0].method_id}"}}'

The hosted reset page, as the demo institution's customers see it (English or Spanish):

  {base}/reset/{credentials.institution_id}
  log in as {sb.DEMO_CUSTOMERS[0].login_id!r}; the passcode is printed here

API description: {base}/docs

Developer portal: {base}/portal
  sign in as {credentials.developer_email} with the password {credentials.developer_password!r}
  (or sign up: the welcome email is printed here). The staff's commands, from this directory:

  PWRESET_DATABASE_URL=sqlite:///{sb.DATABASE_FILE} PWRESET_SECRET_KEY="$(cat {sb.KEY_FILE})" \
  PWRESET_PORTAL_INSTITUTION_ID={sb.INSTITUTION_ID} PWRESET_PUBLIC_URL={base} pwreset portal requests
"""
    )
    configure_logging(settings.log_level, json=False)
    # The seed ran on another event loop; start the server with fresh connections.
    from pwreset.ops.server import GuardedHttpToolsProtocol

    uvicorn.run(
        create_app(settings, container=build_container(settings)), host=host, port=port,
        log_config=None, access_log=False, server_header=False, http=GuardedHttpToolsProtocol,
    )


# delivery


@app.command("worker")
def worker(
    metrics_port: Annotated[
        int | None, typer.Option("--metrics-port", help="serve /metrics for Prometheus on this port")
    ] = None,
) -> None:
    """Deliver queued messages until SIGTERM or Ctrl-C (then finish the sends in flight)."""
    import signal

    from pwreset.ops.logs import configure_logging

    settings = _settings()
    configure_logging(settings.log_level, json=settings.log_json)

    from pwreset.ops.deployment import claim

    async def work(services: Container) -> None:
        await claim(services.db, sandbox=False, clock=services.clock)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, services.worker.stop)
        if metrics_port is not None:
            from prometheus_client import start_http_server

            start_http_server(metrics_port, addr="127.0.0.1")
        channels = ", ".join(f"{c}={p.name}" for c, p in services.worker.providers.items())
        typer.echo(f"pwreset worker: delivering ({channels}); SIGTERM finishes the sends in flight", err=True)
        await services.worker.run()

    _run(_with_services(settings, work))


def _duration(value: str, *, option: str = "--older-than", zero: bool = False) -> timedelta:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if zero and value == "0":
        return timedelta(0)
    number, unit = value[:-1], value[-1:]
    if unit not in units or not (number.isascii() and number.isdigit()) or len(number) > 6:
        raise CommandError(f"{option} {value!r}: use a number and a unit, like 30d, 12h or 90m")
    return timedelta(seconds=int(number) * units[unit])


@outbox_app.command("list")
def outbox_list(
    status: Annotated[str | None, typer.Option("--status", help="pending, sending, sent, dead or expired")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The latest messages, newest first (destinations masked, texts sealed)."""
    from pwreset.delivery import admin

    rows = _run(_in_transaction(_settings(), lambda s: admin.list_messages(s, status=status, limit=limit)))
    listed = [
        {"id": r.id, "status": r.status, "kind": r.kind, "channel": r.channel, "destination": r.destination_masked,
         "institutionId": r.institution_id, "attempts": r.attempts, "createdAt": r.created_at.isoformat(),
         "sentAt": r.sent_at.isoformat() if r.sent_at else None, "lastError": r.last_error}
        for r in rows
    ]
    if as_json:
        _echo_json(listed)
        return
    for m in listed:
        typer.echo(f"{m['id']}  {m['status']:8} {m['channel']:5} {m['kind']:16} {m['destination']:20} "
                   f"attempts {m['attempts']}  {m['createdAt']}  {m['lastError'] or ''}".rstrip())


@outbox_app.command("retry")
def outbox_retry(message_id: Annotated[str, typer.Argument()]) -> None:
    """Queue a dead message again, with its attempts reset."""
    from pwreset.delivery import admin
    from pwreset.kit.clock import Clock

    row = _run(_in_transaction(_settings(), lambda s: admin.retry(s, message_id=message_id, clock=Clock())))
    typer.echo(f"{row.id} queued again")


@outbox_app.command("purge")
def outbox_purge(
    older_than: Annotated[str, typer.Option("--older-than", help="age, like 30d, 12h or 90m")],
) -> None:
    """Delete sent, dead and expired messages older than the given age (never queued ones)."""
    from pwreset.delivery import admin
    from pwreset.kit.clock import Clock

    age = _duration(older_than)
    count = _run(_in_transaction(_settings(), lambda s: admin.purge(s, older_than=age, clock=Clock())))
    typer.echo(f"deleted {count} messages")


@templates_app.command("set")
def templates_set(
    institution: Annotated[str, typer.Option("--institution")],
    kind: Annotated[str, typer.Option("--kind", help="passcode or password_changed")],
    channel: Annotated[str, typer.Option("--channel", help="SMS, VOICE or EMAIL")],
    language: Annotated[str, typer.Option("--language", help="en or es")],
    body: Annotated[Path, typer.Option("--body", help="file with the text (Jinja2)")],
    subject: Annotated[str | None, typer.Option("--subject", help="email subject (Jinja2)")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="file with the email's HTML part (Jinja2)")] = None,
) -> None:
    """Use the institution's own text for one kind of message (checked: SMS must fit one segment)."""
    from pwreset.delivery import admin
    from pwreset.kit.clock import Clock

    try:
        text = body.read_text(encoding="utf-8")
        html_text = html.read_text(encoding="utf-8") if html else None
    except OSError as exc:
        raise CommandError(f"cannot read {exc.filename}: {exc.strerror}") from None
    _run(_in_transaction(_settings(), lambda s: admin.set_template(
        s, institution_id=institution, kind=kind, channel=channel.upper(), language=language, body=text,
        subject=subject, html=html_text, clock=Clock(),
    )))
    typer.echo(f"template {kind}/{channel.upper()}/{language} set for institution {institution}")


@templates_app.command("list")
def templates_list(institution: Annotated[str, typer.Option("--institution")]) -> None:
    """The institution's own templates (the shipped ones apply to everything else)."""
    from pwreset.delivery import admin

    rows = _run(_in_transaction(_settings(), lambda s: admin.list_templates(s, institution_id=institution)))
    for r in rows:
        typer.echo(f"{r.kind:16} {r.channel:5} {r.language}  updated {r.updated_at.isoformat()}")


@templates_app.command("delete")
def templates_delete(
    institution: Annotated[str, typer.Option("--institution")],
    kind: Annotated[str, typer.Option("--kind")],
    channel: Annotated[str, typer.Option("--channel")],
    language: Annotated[str, typer.Option("--language")],
) -> None:
    """Go back to the shipped text for one kind of message."""
    from pwreset.delivery import admin
    from pwreset.kit.clock import Clock

    deleted = _run(_in_transaction(_settings(), lambda s: admin.delete_template(
        s, institution_id=institution, kind=kind, channel=channel.upper(), language=language, clock=Clock(),
    )))
    if not deleted:
        raise CommandError(f"institution {institution} has no {kind}/{channel.upper()}/{language} template")
    typer.echo("deleted; the shipped text applies again")


def main() -> None:
    try:
        app(standalone_mode=True)
    except SystemExit:
        raise
    except (CommandError, ConfigurationError, PwresetError, PortalError) as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except (OperationalError, ProgrammingError, DBAPIError) as exc:
        typer.echo(f"error: {_database_problem(exc)}", err=True)
        sys.exit(1)
    except (OSError, ConnectionError) as exc:
        typer.echo(f"error: {exc.strerror or exc}", err=True)
        sys.exit(1)


def _database_problem(exc: DBAPIError) -> str:
    text = str(exc.orig) if exc.orig is not None else str(exc)
    lowered = text.lower()
    if "no such table" in lowered or ("does not exist" in lowered and "relation" in lowered):
        return "the database has no pwreset tables; run `pwreset db upgrade` first"
    return "database error: " + text.splitlines()[0][:200]
