"""``PUT /v1/customers/{customerId}:contact-info``: a customer's phone number or email address changes
(Candescent's ``updateContactInfo``, spec 1.11.0; issue 14, item 3).

- ``phoneNumber``: ``newPhoneNumber`` (and ``newCountryCode``) replace ``oldPhoneNumber`` on every SMS
  and VOICE method that has it; without ``oldPhoneNumber``, the customer's one number (refused when
  there are several). ``email``: ``emailAddress`` replaces the customer's one email address.
- Each changed method is marked with the time of the change: for the institution's cool-off
  (``PWRESET_CONTACT_COOLOFF``, 7 days), it receives no reset passcode (``UXU_20007``), so a fraudster who
  changes the number cannot reset at once.
- The old destination is told, with the institution's "not you?" line; the change is audited (method
  ids and protocols, never a destination) and sent to the institution's webhook (``contact.changed``).
- pwreset holds no postal addresses: a body that would change one is refused whole (``UXU_88891``).
- At most ``CHANGES_PER_DAY`` changes per customer a day: a stolen partner key cannot churn them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.audit import service as audit
from pwreset.customers.contact import PHONE_PROTOCOLS, InvalidContact, normalise
from pwreset.customers.models import ContactMethod, Customer
from pwreset.delivery.outbox import Message, Outbox
from pwreset.errors import PwresetError
from pwreset.events.service import SecurityEvents
from pwreset.kit.clock import Clock
from pwreset.ratelimit.limiter import RateLimiter, Rule
from pwreset.resets import repository as resets

CHANGES_PER_DAY = 5
#: What one partner application, and all of an institution's, may change in an hour: a stolen key
#: cannot move a directory's numbers (each change also starts a cool-off, a lockout in bulk).
CLIENT_CHANGES_PER_HOUR = 100
INSTITUTION_CHANGES_PER_HOUR = 300


class ContactNotFound(PwresetError):
    key = "contact.not_found"
    message = "phone number, email address or postal address not found for this customer"


class InvalidContactChange(PwresetError):
    key = "request.invalid_body"
    message = "the contact change is not valid"


@dataclass(frozen=True)
class PhoneChange:
    new_number: str
    new_country_code: str | None
    old_number: str | None
    old_country_code: str | None


@dataclass(frozen=True)
class ContactChange:
    phone: PhoneChange | None
    email: str | None
    postal_address: bool


class ContactChanges:
    def __init__(self, *, outbox: Outbox, events: SecurityEvents, limiter: RateLimiter, clock: Clock) -> None:
        self.outbox = outbox
        self.events = events
        self.limiter = limiter
        self.clock = clock
        self.rule = Rule("contact-change", CHANGES_PER_DAY, 86_400)
        self.client_rule = Rule("contact-change-client", CLIENT_CHANGES_PER_HOUR, 3600)
        self.institution_rule = Rule("contact-change-institution", INSTITUTION_CHANGES_PER_HOUR, 3600)

    async def change(
        self, session: AsyncSession, *, customer: Customer, change: ContactChange, client_id: str | None,
        correlation_id: str | None,
    ) -> int:
        """Apply ``change`` in the caller's unit of work; the number of methods changed."""
        if change.postal_address:
            raise ContactNotFound("pwreset holds no postal addresses; change them in the host system")
        if change.phone is None and change.email is None:
            raise InvalidContactChange("the body changes nothing: give phoneNumber or email")
        plans: list[tuple[str, list[ContactMethod], Any]] = []
        if change.phone is not None:
            plans.append(("phone", *self._phone_plan(customer, change.phone)))
        if change.email is not None:
            plans.append(("email", *self._email_plan(customer, change.email)))
        consumed = []
        try:
            for rule, subject in ((self.institution_rule, f"institution:{customer.institution_id}"),
                                  (self.client_rule, f"client:{client_id}"), (self.rule, f"customer:{customer.id}")):
                consumed.append((rule, subject, await self.limiter.consume(rule, subject)))
        except BaseException:
            for rule, subject, stamp in consumed:
                await self.limiter.release(rule, subject, stamp)
            raise
        # Resets of this customer wait for the change (and a change for a reset under way).
        await session.execute(select(Customer.id).where(Customer.id == customer.id).with_for_update())
        now = self.clock.now()
        changed = 0
        for what, methods, new in plans:
            old = methods[0].destination
            if old == new.destination:
                continue  # already so: nothing changes, no cool-off starts
            notice = next((m for m in methods if m.protocol == "SMS"), None) or methods[0]
            await self.outbox.enqueue(session, Message(
                institution_id=customer.institution_id, kind="contact_changed", channel=notice.protocol,
                destination=old, language=customer.language, variables={"changed": what},
                customer_pk=customer.id, customer_id=customer.customer_id, contact_method_id=notice.method_id,
                client_id=client_id, correlation_id=correlation_id,
            ))
            for method in methods:
                method.contact_info = new.contact_info
                method.country_code = new.country_code
                method.destination = new.destination
                method.changed_at = now
                method.validated = False
            changed += len(methods)
            details = {"changed": what, "contactMethodIds": [m.method_id for m in methods],
                       "protocols": sorted({m.protocol for m in methods})}
            await audit.record_event(
                session, clock=self.clock, event_type="contact.changed", outcome="success",
                institution_id=customer.institution_id, client_id=client_id, customer_id=customer.customer_id,
                correlation_id=correlation_id, details=details,
            )
            await self.events.emit(session, customer.institution_id, "contact.changed",
                                   customer_id=customer.customer_id, client_id=client_id,
                                   correlation_id=correlation_id, data=details)
        if changed:
            customer.updated_at = now
            # What was under way for the old destinations ends: passcodes, tickets, a first channel verified.
            await resets.supersede_active(session, customer_pk=customer.id)
            await resets.void_tickets(session, customer_pk=customer.id, at=now)
            await resets.void_pending_first(session, customer_pk=customer.id)
        await session.flush()
        return changed

    def _phone_plan(self, customer: Customer, phone: PhoneChange) -> tuple[list[ContactMethod], Any]:
        phones = [m for m in customer.contact_methods if m.protocol in PHONE_PROTOCOLS]
        if phone.old_number is not None:
            old_code = phone.old_country_code or next((m.country_code for m in phones if m.country_code), "1")
            try:
                old = normalise("SMS", phone.old_number, old_code).destination
            except InvalidContact as error:
                raise InvalidContactChange(f"oldPhoneNumber: {error}") from None
            methods = [m for m in phones if m.destination == old]
        else:
            numbers = {m.destination for m in phones}
            if len(numbers) > 1:
                raise InvalidContactChange("oldPhoneNumber is required: the customer has more than one number")
            methods = phones
        if not methods:
            raise ContactNotFound("the customer has no such phone number")
        code = phone.new_country_code or phone.old_country_code or methods[0].country_code
        try:
            new = normalise("SMS", phone.new_number, code)
        except InvalidContact as error:
            raise InvalidContactChange(f"newPhoneNumber: {error}") from None
        return methods, new

    def _email_plan(self, customer: Customer, address: str) -> tuple[list[ContactMethod], Any]:
        emails = [m for m in customer.contact_methods if m.protocol == "EMAIL"]
        if not emails:
            raise ContactNotFound("the customer has no email address")
        if len({m.destination for m in emails}) > 1:
            primary = [m for m in emails if m.primary]
            if len({m.destination for m in primary}) != 1:
                raise InvalidContactChange("the customer has more than one email address and none is primary")
            emails = [m for m in emails if m.destination == primary[0].destination]
        try:
            new = normalise("EMAIL", address, None)
        except InvalidContact as error:
            raise InvalidContactChange(f"emailAddress: {error}") from None
        return emails, new
