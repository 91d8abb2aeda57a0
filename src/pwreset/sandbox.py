"""The sandbox: a SQLite file in the working directory, migrated and seeded with demo data.

Its secret key lives in ``pwreset-sandbox.key`` beside the database, and the demo client's
credentials are derived from that key, so a second run reuses the same data and prints the same
credentials. Never for production: the sandbox can print its secret because it can re-derive it.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import delete, update

from pwreset.container import Container
from pwreset.customers.importer import Importer
from pwreset.customers.models import Customer
from pwreset.institutions import repository as institutions
from pwreset.institutions.service import create_institution
from pwreset.oauth import repository as clients
from pwreset.oauth.scopes import KNOWN_SCOPES, render
from pwreset.oauth.service import SECRET_PREFIX, SHARED_KEY_PREFIX
from pwreset.web import branding as page_branding

DATABASE_FILE = "pwreset.db"
SUSPENDED_UNTIL = datetime(2099, 12, 31, tzinfo=UTC)
KEY_FILE = "pwreset-sandbox.key"
INSTITUTION_ID = "00001"
INSTITUTION_NAME = "Demo Credit Union"


@dataclass(frozen=True)
class DemoCustomer:
    customer_id: str
    login_id: str
    password: str
    protocol: str
    method_id: str
    contact: str
    country_code: str | None
    first_name: str
    last_name: str


DEMO_CUSTOMERS = (
    DemoCustomer("5a1d0e5d3c2b4a1f9e8d7c6b5a4f0001", "pat.doe", "Sandbox-Pass-1", "SMS", "100000001", "2025550143",
                 "1", "Pat", "Doe"),
    DemoCustomer("5a1d0e5d3c2b4a1f9e8d7c6b5a4f0002", "sam.lee", "Sandbox-Pass-2", "VOICE", "100000002", "2025550178",
                 "1", "Sam", "Lee"),
    DemoCustomer("5a1d0e5d3c2b4a1f9e8d7c6b5a4f0003", "alex.kim", "Sandbox-Pass-3", "EMAIL", "100000003",
                 "alex.kim@example.com", None, "Alex", "Kim"),
)


@dataclass(frozen=True)
class EdgeCustomer:
    """A demo customer whose reset is refused, for a portal organisation's sandbox: every path of the
    flow can be tried there (docs/portal.md)."""

    customer: DemoCustomer
    why: str
    registered: bool = True
    accepted_disclosure: bool = True
    method_activated: bool = True
    #: Resets suspended after too many wrong passcodes (until far in the future): the cool-off refusal.
    suspended: bool = False
    #: The portal offers to use up this customer's send limit (real sends, to the sandbox inbox), after
    #: which its resets are refused with the limit's 429 until the limit's window moves on.
    send_limited: bool = False


EDGE_CUSTOMERS = (
    EdgeCustomer(DemoCustomer("5a1d0e5d3c2b4a1f9e8d7c6b5a4f0004", "jo.new", "Sandbox-Pass-4", "SMS", "100000004",
                              "2025550111", "1", "Jo", "New"), "not registered for online banking", registered=False),
    EdgeCustomer(DemoCustomer("5a1d0e5d3c2b4a1f9e8d7c6b5a4f0005", "lee.park", "Sandbox-Pass-5", "SMS", "100000005",
                              "2025550122", "1", "Lee", "Park"), "has not accepted the disclosures",
                 accepted_disclosure=False),
    EdgeCustomer(DemoCustomer("5a1d0e5d3c2b4a1f9e8d7c6b5a4f0006", "max.ruiz", "Sandbox-Pass-6", "SMS", "100000006",
                              "2025550133", "1", "Max", "Ruiz"), "their only method is deactivated",
                 method_activated=False),
    EdgeCustomer(DemoCustomer("5a1d0e5d3c2b4a1f9e8d7c6b5a4f0007", "rae.lock", "Sandbox-Pass-7", "SMS", "100000007",
                              "2025550155", "1", "Rae", "Lock"),
                 "too many wrong passcodes: resets are suspended", suspended=True),
    EdgeCustomer(DemoCustomer("5a1d0e5d3c2b4a1f9e8d7c6b5a4f0008", "kit.busy", "Sandbox-Pass-8", "SMS", "100000008",
                              "2025550166", "1", "Kit", "Busy"),
                 "once its send limit is used up (the button does it; one a minute, five an hour)",
                 send_limited=True),
)


#: A portal organisation's sandbox holds these (docs/portal.md).
PORTAL_CUSTOMERS = (*DEMO_CUSTOMERS, *EDGE_CUSTOMERS)


def host_user_id(number: int) -> str:
    """The demo customer's id in the host system (``hostUserId`` of the Accounts API)."""
    return f"HOST-{number:04d}"


#: The demo customers' ids before they took the spec's 32-hex form: a sandbox database made then still
#: holds them (and their login ids), so the seed replaces them.
FORMER_DEMO_IDS = ("demo-sms-0001", "demo-voice-0002", "demo-email-0003")


class SandboxSeedFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class SandboxCredentials:
    institution_id: str
    shared_key: str
    secret_key: str
    scopes: str
    developer_email: str | None = None
    developer_password: str | None = None


DEMO_DEVELOPER = ("dev@partner.example", "Dana Developer")
REPRESENTATIVE = "partners@demo-credit-union.example"


def sandbox_key(directory: Path) -> str:
    """The sandbox's secret key, made on first use (readable by its owner only)."""
    path = directory / KEY_FILE
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key


_DEPOSIT_ACTIONS = {"summary": True, "transferFrom": True, "transferTo": True, "isHistoryEnabled": True,
                    "isHistoryEntitled": True, "isOnlineStatementEnabled": True}
_LOAN_ACTIONS = {**_DEPOSIT_ACTIONS, "transferFrom": False}


def demo_accounts(number: int, holder: str) -> list[dict[str, object]]:
    """A checking, a savings and a loan account for a demo customer (Candescent's DIAccountType
    values, every status and action flag)."""
    routing = "011000015"
    return [
        {"id": f"chk-{number}", "accountNumber": f"00012345{number:04d}", "nickName": "Everyday",
         "description": "Checking", "type": {"value": "CHECKING"}, "primaryHolderName": holder,
         "routingNumber": routing, "currentBalance": {"currencyCode": "USD", "amount": f"{1520.35 * number:.2f}"},
         "availableBalance": {"currencyCode": "USD", "amount": f"{1490.35 * number:.2f}"},
         "status": {"open": True}, "allowedActions": _DEPOSIT_ACTIONS},
        {"id": f"sav-{number}", "accountNumber": f"00098765{number:04d}", "nickName": "Rainy day",
         "description": "Savings", "type": {"value": "SAVINGS"}, "primaryHolderName": holder,
         "routingNumber": routing, "currentBalance": {"currencyCode": "USD", "amount": f"{8200.00 * number:.2f}"},
         "availableBalance": {"currencyCode": "USD", "amount": f"{8200.00 * number:.2f}"},
         "status": {"open": True}, "allowedActions": _DEPOSIT_ACTIONS},
        {"id": f"loan-{number}", "accountNumber": f"00055500{number:04d}", "nickName": "Car loan",
         "description": "Auto loan", "type": {"value": "CONSUMER_LOAN", "description": "Auto Loan"},
         "primaryHolderName": holder,
         "currentBalance": {"currencyCode": "USD", "amount": f"-{12850.75 * number:.2f}"},
         "status": {"open": True}, "allowedActions": _LOAN_ACTIONS},
    ]


#: Where the reset page's "Sign in" goes when the demo's password is changed (a fictional address).
DEMO_SIGN_IN_URL = "https://online.demo-credit-union.example/sign-in"
#: A fictional number (555-01xx is reserved for fiction) for the demo institution's notices.
DEMO_CONTACT_LINE = "1-800-555-0100"


async def seed(services: Container) -> SandboxCredentials:
    """Create the demo institution and client unless they exist (idempotent)."""
    shared_key = SHARED_KEY_PREFIX + "demo" + services.hasher.derive("sandbox-shared-key")[:24]
    secret = SECRET_PREFIX + services.hasher.derive("sandbox-secret-key")
    all_scopes = render(KNOWN_SCOPES)
    async with services.db.transaction() as session:
        if await institutions.get(session, INSTITUTION_ID) is None:
            demo = await create_institution(
                session, institution_id=INSTITUTION_ID, name=INSTITUTION_NAME, clock=services.clock
            )
            demo.contact_line = DEMO_CONTACT_LINE  # the notices' "not you? call ..." line, the page's help line
        if await page_branding.branding(session, INSTITUTION_ID) is None:  # the hosted reset page's look
            await page_branding.set_branding(session, clock=services.clock, institution_id=INSTITUTION_ID,
                                             sandbox=True, sign_in_url=DEMO_SIGN_IN_URL)
        if await clients.client_by_shared_key(session, shared_key) is None:
            await services.oauth.create_client(
                session, institution_id=INSTITUTION_ID, scope=all_scopes, name="Sandbox demo app",
                shared_key=shared_key, secret_key=secret,
            )
        await session.execute(
            delete(Customer).where(Customer.institution_id == INSTITUTION_ID, Customer.customer_id.in_(FORMER_DEMO_IDS))
        )
    await seed_customers(services, INSTITUTION_ID, DEMO_CUSTOMERS)
    email = password = None
    if services.settings.portal_institution_id is not None:  # the portal's demo developer and their sandbox
        email, name = DEMO_DEVELOPER
        password = "Portal-" + services.hasher.derive("sandbox-developer-password")[:16]
        async with services.db.transaction() as session:
            organisation = await services.portal.ensure_developer(session, email=email, name=name, password=password)
        await seed_customers(services, organisation.sandbox_institution_id, PORTAL_CUSTOMERS)
    return SandboxCredentials(INSTITUTION_ID, shared_key, secret, all_scopes, email, password)


async def seed_customers(
    services: Container, institution_id: str, customers: tuple[DemoCustomer | EdgeCustomer, ...]
) -> None:
    """Load demo customers into ``institution_id`` (idempotent: the importer upserts by customer id)."""
    importer = Importer(db=services.db, hashing=services.hashing, clock=services.clock)
    records = []
    for number, entry in enumerate(customers, 1):
        c = entry.customer if isinstance(entry, EdgeCustomer) else entry
        flags = entry if isinstance(entry, EdgeCustomer) else None
        records.append((number, {
            "customerId": c.customer_id, "loginId": c.login_id, "firstName": c.first_name,
            "lastName": c.last_name, "password": c.password, "hostUserId": host_user_id(number),
            "memberNumber": f"{100200300 + number}",
            "registered": flags.registered if flags else True,
            "acceptedDisclosure": flags.accepted_disclosure if flags else True,
            "contactMethods": [
                {"id": c.method_id, "protocol": c.protocol, "contactInfo": c.contact,
                 "telephoneCountryCode": c.country_code, "isActivated": flags.method_activated if flags else True,
                 "validated": True, "primary": True}
            ],
            "accounts": demo_accounts(number, f"{c.first_name} {c.last_name}"),
        }))
    report = await importer.run(records, institution_id=institution_id)
    if report.refused:
        raise SandboxSeedFailed(
            f"the demo data could not be loaded into {DATABASE_FILE} ({report.refused[0][1]}); "
            f"remove {DATABASE_FILE} and {KEY_FILE} to start a fresh sandbox"
        )
    suspended = [e.customer.customer_id for e in customers if isinstance(e, EdgeCustomer) and e.suspended]
    if suspended:
        async with services.db.transaction() as session:
            await session.execute(
                update(Customer).where(Customer.institution_id == institution_id, Customer.customer_id.in_(suspended))
                .values(reset_blocked_until=SUSPENDED_UNTIL)
            )
