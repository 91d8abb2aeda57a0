"""An institution's look on the reset page, and its own templates: validation and storage.

Set with ``pwreset page brand`` and ``pwreset page template``, or on the portal's staff page for the
portal's institution. Every value is checked before it is stored, so a page never renders a colour
that fails contrast, a logo that is not an image, or a link to somewhere that is not a web page:

- colours: ``#rrggbb``, at least 4.5:1 against white (WCAG 2.2 SC 1.4.3; the accent is link text on
  white and white button text on the accent, the header colour is the band behind white text);
- the logo: PNG, JPEG or SVG by its bytes (not its name), at most 100 KiB; served from pwreset itself
  (the page's CSP loads images only from there), an SVG with a policy that runs nothing;
- the sign-in link: ``https://`` (``http://`` only in the sandbox), no credentials in it;
- frame-ancestors: ``https://`` origins, at most 8 (CSP ``frame-ancestors``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.db import on_commit
from pwreset.errors import PwresetError
from pwreset.kit.clock import Clock
from pwreset.kit.crypto import new_id
from pwreset.web.models import Branding, PageTemplate

LOGO_LIMIT = 100 * 1024
MIN_CONTRAST = 4.5
WHITE = "#ffffff"
#: The page's templates an institution may replace (``pwreset page template set``).
TEMPLATES = ("base.html", "start.html", "choose.html", "code.html", "password.html", "done.html", "message.html")
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
#: ``https://`` and a host name of two labels at least (a wildcard only as the first of three or more), a port.
_ORIGIN = re.compile(r"https://(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}(:[0-9]{1,5})?")


#: Bumped when a change this process made to a look or a template commits: the page's cache of them
#: (web/routes.py) drops its copies at once here, and within its TTL in other processes.
GENERATION = [0]


def changed() -> None:
    GENERATION[0] += 1


class BrandingInvalid(PwresetError, ValueError):
    key = "request.invalid_body"


@dataclass(frozen=True)
class Look:
    """What a page needs of the institution's look (defaults when it has none)."""

    accent: str = "#0b5394"
    header: str = "#12304d"
    has_logo: bool = False
    sign_in_url: str | None = None
    frame_ancestors: tuple[str, ...] = ()
    version: str = "0"


def _linear(channel: int) -> float:
    c = channel / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def luminance(color: str) -> float:
    """Relative luminance (WCAG 2.2, "relative luminance")."""
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * _linear(r) + 0.7152 * _linear(g) + 0.0722 * _linear(b)


def contrast(a: str, b: str) -> float:
    """The contrast ratio of two colours, 1 to 21 (WCAG 2.2, "contrast ratio")."""
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def check_color(name: str, value: str) -> str:
    if not _COLOR.fullmatch(value):
        raise BrandingInvalid(f"{name} must be a colour written #rrggbb, like #0b5394")
    ratio = contrast(value.lower(), WHITE)
    if ratio < MIN_CONTRAST:
        raise BrandingInvalid(
            f"{name} {value} has a contrast of {ratio:.2f}:1 with white; the page needs at least "
            f"{MIN_CONTRAST}:1 (WCAG 2.2 SC 1.4.3): choose a darker colour"
        )
    return value.lower()


def logo_type(data: bytes) -> str:
    """The image type by its first bytes; refuses anything else."""
    if len(data) > LOGO_LIMIT:
        raise BrandingInvalid(f"the logo is {len(data)} bytes; at most {LOGO_LIMIT} (100 KiB)")
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    head = data[:512].lstrip().lower()
    if (head.startswith(b"<svg") or head.startswith(b"<?xml")) and b"<svg" in data[:4096].lower():
        return "image/svg+xml"
    raise BrandingInvalid("the logo must be a PNG, JPEG or SVG image")


def check_sign_in_url(value: str, *, sandbox: bool) -> str:
    parts = urlsplit(value)
    allowed = ("https", "http") if sandbox else ("https",)
    if parts.scheme not in allowed or not parts.hostname or parts.username or parts.password or len(value) > 500:
        raise BrandingInvalid("the sign-in URL must be an https:// address (at most 500 characters)")
    return value


def check_frame_ancestors(value: str) -> str:
    origins = value.split()
    if len(origins) > 8 or not all(_ORIGIN.fullmatch(origin) for origin in origins):
        raise BrandingInvalid(
            "frame-ancestors takes up to 8 https:// origins (scheme, host and port only), separated by spaces"
        )
    return " ".join(origins)


def check_template(name: str, source: str) -> str:
    if name not in TEMPLATES:
        raise BrandingInvalid(f"the page's templates are {', '.join(TEMPLATES)}")
    if len(source) > 64 * 1024:
        raise BrandingInvalid("a template is at most 64 KiB")
    try:
        SandboxedEnvironment(autoescape=True).parse(source)
    except TemplateSyntaxError as bad:
        raise BrandingInvalid(f"the template does not parse: line {bad.lineno}: {bad.message}") from None
    return source


def look_of(row: Branding | None) -> Look:
    if row is None:
        return Look()
    defaults = Look()
    return Look(
        accent=row.accent_color or defaults.accent, header=row.header_color or defaults.header,
        has_logo=row.logo is not None, sign_in_url=row.sign_in_url,
        frame_ancestors=tuple((row.frame_ancestors or "").split()),
        version=str(int(row.updated_at.timestamp())),
    )


async def set_branding(
    session: AsyncSession, *, clock: Clock, institution_id: str, sandbox: bool,
    accent_color: str | None = None, header_color: str | None = None, logo: bytes | None = None,
    sign_in_url: str | None = None, frame_ancestors: str | None = None, clear: tuple[str, ...] = (),
) -> Branding:
    """Check every given value, then store them (an empty string or a name in ``clear`` removes one)."""
    row = await session.get(Branding, institution_id)
    if row is None:
        row = Branding(institution_id=institution_id, updated_at=clock.now())
        session.add(row)
    if accent_color is not None:
        row.accent_color = check_color("the accent colour", accent_color) if accent_color else None
    if header_color is not None:
        row.header_color = check_color("the header colour", header_color) if header_color else None
    if logo is not None:
        row.logo_type = logo_type(logo) if logo else None
        row.logo = logo or None
    if sign_in_url is not None:
        row.sign_in_url = check_sign_in_url(sign_in_url, sandbox=sandbox) if sign_in_url else None
    if frame_ancestors is not None:
        row.frame_ancestors = check_frame_ancestors(frame_ancestors) or None
    for name in clear:
        if name == "logo":
            row.logo = row.logo_type = None
        elif name in ("accent_color", "header_color", "sign_in_url", "frame_ancestors"):
            setattr(row, name, None)
    row.updated_at = clock.now()
    await session.flush()
    on_commit(session, changed)
    return row


async def branding(session: AsyncSession, institution_id: str) -> Branding | None:
    return await session.get(Branding, institution_id)


async def set_template(session: AsyncSession, *, clock: Clock, institution_id: str, name: str, source: str) -> None:
    check_template(name, source)
    found = await session.scalar(select(PageTemplate).where(
        PageTemplate.institution_id == institution_id, PageTemplate.name == name))
    if found is None:
        session.add(PageTemplate(id=new_id(), institution_id=institution_id, name=name, source=source,
                                 updated_at=clock.now()))
    else:
        found.source, found.updated_at = source, clock.now()
    await session.flush()
    on_commit(session, changed)


async def delete_template(session: AsyncSession, *, institution_id: str, name: str) -> bool:
    result = await session.execute(delete(PageTemplate).where(
        PageTemplate.institution_id == institution_id, PageTemplate.name == name))
    on_commit(session, changed)
    return bool(getattr(result, "rowcount", 0))


async def templates(session: AsyncSession, institution_id: str) -> dict[str, str]:
    rows = await session.execute(select(PageTemplate.name, PageTemplate.source).where(
        PageTemplate.institution_id == institution_id))
    return {name: source for name, source in rows.all()}
