"""``pwreset page ...``: an institution's hosted reset page (web/): its look and its own templates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.institutions import repository as institutions
from pwreset.institutions.errors import InstitutionNotFound
from pwreset.kit.clock import Clock
from pwreset.web import branding

page_app = typer.Typer(help="The hosted reset page (/reset/<institution>): its look and templates.",
                       no_args_is_help=True)
template_app = typer.Typer(help="An institution's own versions of the page's templates.", no_args_is_help=True)
page_app.add_typer(template_app, name="template")


def _main() -> Any:
    from pwreset.cli import main  # (late: main imports this module)

    return main


async def _institution(session: AsyncSession, institution_id: str) -> None:
    if await institutions.get(session, institution_id) is None:
        raise InstitutionNotFound(f"no institution {institution_id}")


def _read(path: Path, limit: int) -> bytes:
    main = _main()
    try:
        if path.stat().st_size > limit:
            raise main.CommandError(f"{path}: larger than {limit} bytes")
        return path.read_bytes()
    except OSError as exc:
        raise main.CommandError(f"{path}: {exc.strerror or exc}") from None


@page_app.command("brand")
def page_brand(
    institution_id: Annotated[str, typer.Argument()],
    accent_color: Annotated[str | None, typer.Option(
        "--accent-color", help="#rrggbb for buttons and links; 4.5:1 against white at least ('' removes it)")] = None,
    header_color: Annotated[str | None, typer.Option(
        "--header-color", help="#rrggbb behind the header's white text; 4.5:1 at least ('' removes it)")] = None,
    logo: Annotated[Path | None, typer.Option("--logo", help="a PNG, JPEG or SVG file, at most 100 KiB")] = None,
    no_logo: Annotated[bool, typer.Option("--no-logo", help="remove the logo")] = False,
    sign_in_url: Annotated[str | None, typer.Option(
        "--sign-in-url", help="where 'Sign in' goes when the password is changed (https; '' removes it)")] = None,
    frame_ancestors: Annotated[str | None, typer.Option(
        "--frame-ancestors", help="https origins that may frame the page, space-separated ('' for none)")] = None,
) -> None:
    """Set an institution's look on the reset page. Its name is the institution's (`institutions set --name`),
    its support phone the contact line (`institutions set --contact-line`)."""
    main = _main()
    settings = main._settings()
    image = b"" if no_logo else (_read(logo, branding.LOGO_LIMIT + 1) if logo is not None else None)

    async def work(session: AsyncSession) -> branding.Look:
        await _institution(session, institution_id)
        row = await branding.set_branding(
            session, clock=Clock(), institution_id=institution_id, sandbox=settings.sandbox,
            accent_color=accent_color, header_color=header_color, logo=image, sign_in_url=sign_in_url,
            frame_ancestors=frame_ancestors,
        )
        return branding.look_of(row)

    look = main._run(main._in_transaction(settings, work))
    typer.echo(f"institution {institution_id}: accent {look.accent}, header {look.header}, "
               f"logo {'yes' if look.has_logo else 'none'}, sign-in {look.sign_in_url or 'none'}, "
               f"frame-ancestors {' '.join(look.frame_ancestors) or 'none'}")


@page_app.command("show")
def page_show(institution_id: Annotated[str, typer.Argument()]) -> None:
    """Show an institution's look and which templates it replaced."""
    main = _main()
    settings = main._settings()

    async def work(session: AsyncSession) -> tuple[branding.Look, list[str]]:
        await _institution(session, institution_id)
        row = await branding.branding(session, institution_id)
        return branding.look_of(row), sorted(await branding.templates(session, institution_id))

    look, names = main._run(main._in_transaction(settings, work))
    main._echo_json({"institutionId": institution_id, "accentColor": look.accent, "headerColor": look.header,
                     "logo": look.has_logo, "signInUrl": look.sign_in_url,
                     "frameAncestors": list(look.frame_ancestors), "templates": names,
                     "page": f"/reset/{institution_id}"})


@template_app.command("set")
def template_set(
    institution_id: Annotated[str, typer.Argument()],
    name: Annotated[str, typer.Argument(help=f"one of {', '.join(branding.TEMPLATES)}")],
    file: Annotated[Path, typer.Option("--file", help="the Jinja2 template (rendered in Jinja2's sandbox)")],
) -> None:
    """Replace one of the page's templates for an institution (see docs/reset-page.md for its variables)."""
    main = _main()
    settings = main._settings()
    try:
        source = _read(file, 64 * 1024 + 1).decode("utf-8")
    except UnicodeDecodeError:
        raise main.CommandError(f"{file}: not UTF-8 text") from None

    async def work(session: AsyncSession) -> None:
        await _institution(session, institution_id)
        await branding.set_template(session, clock=Clock(), institution_id=institution_id, name=name, source=source)

    main._run(main._in_transaction(settings, work))
    typer.echo(f"institution {institution_id}: {name} replaced")


@template_app.command("remove")
def template_remove(
    institution_id: Annotated[str, typer.Argument()], name: Annotated[str, typer.Argument()],
) -> None:
    """Go back to pwreset's own version of a template."""
    main = _main()

    async def work(session: AsyncSession) -> bool:
        return await branding.delete_template(session, institution_id=institution_id, name=name)

    removed = main._run(main._in_transaction(main._settings(), work))
    typer.echo(f"institution {institution_id}: {name} " + ("is pwreset's own again" if removed else "was not replaced"))
