"""The delivery worker: claims outbox rows, renders them, hands them to the channel's provider.

- **Claiming** is one statement: ``UPDATE outbox SET status='sending', claim=<token>,
  attempts=attempts+1, available_at=<end of lease> WHERE id IN (SELECT ... due ... LIMIT n FOR
  UPDATE SKIP LOCKED) RETURNING ...``. Due means pending and available, or sending with its lease
  over (a worker died mid-send). Several workers on several machines share the queue: PostgreSQL
  skips rows another worker holds; SQLite serialises writers, so the claim is atomic there too.
- **Outcomes** are recorded only by the holder of the claim (``WHERE claim = <token>``), through a
  group commit, with an audit event for sent, dead and expired messages.
- **At least once.** A message is marked sent only after the provider accepted it, so a worker
  killed between the two sends it again after the lease; every send carries the message id as
  idempotency key (``Idempotency-Key`` over HTTP, the Message-ID in email). Whether a repeat is
  dropped is up to the provider: the webhook contract asks receivers to; Twilio does not promise it.
- **Retries**: transient failures wait ``base * 2^(attempt-1)`` seconds, capped, with jitter (or
  the provider's ``Retry-After`` if longer); permanent failures and the last attempt go to
  ``dead`` with the reason. A passcode message past its passcode's expiry is dropped as
  ``expired``, never sent late.
- **Waking**: in-process producers set ``Outbox.wake``; on PostgreSQL the worker LISTENs on
  ``pwreset_outbox``, which producers NOTIFY in their transaction; otherwise it polls every
  ``PWRESET_WORKER_POLL_INTERVAL`` seconds.
- **Stopping** (SIGTERM): no new claims; sends in flight finish and their outcomes are written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, cast

import asyncpg
import orjson
from sqlalchemy import Table, bindparam, func, insert, select, update

from pwreset.audit import service as audit
from pwreset.audit.chain import AuditChain
from pwreset.audit.models import AuditEvent
from pwreset.config import Settings
from pwreset.db import Database, GroupCommit, copy_rows
from pwreset.delivery import metrics
from pwreset.delivery.models import OutboxMessage
from pwreset.delivery.outbox import CHANNEL, Outbox, notify
from pwreset.delivery.providers.base import Accepted, DeliveryFailure, Outgoing, PermanentFailure, Provider
from pwreset.delivery.providers.inbox import SANDBOX_INBOX
from pwreset.delivery.rendering import Rendered, Renderer, TemplateInvalid, variables_for
from pwreset.events.service import SecurityEvents
from pwreset.institutions.cache import InstitutionCache
from pwreset.institutions.errors import InstitutionNotFound
from pwreset.kit.clock import Clock
from pwreset.kit.crypto import NotOurKey, new_id

log = logging.getLogger("pwreset.delivery")
#: Seconds a message this worker cannot open waits before any worker claims it again.
UNREADABLE_RETRY = 30.0
#: Seconds after which a message no worker could open is given up (dead, with the reason).
UNREADABLE_GIVE_UP = 7 * 86400.0

_OUTBOX = cast(Table, OutboxMessage.__table__)
_AUDIT = cast(Table, AuditEvent.__table__)
_c = _OUTBOX.c
_CLAIMED = (
    _c.id, _c.institution_id, _c.kind, _c.channel, _c.language, _c.sealed, _c.attempts, _c.created_at, _c.not_after,
    _c.customer_id, _c.client_id, _c.correlation_id, _c.contact_method_id, _c.destination_masked,
)


def _claim_statement(*, skip_locked: bool) -> Any:
    due = (
        select(_c.id)
        .where(_c.status.in_(("pending", "sending")), _c.available_at <= bindparam("now"))
        .order_by(_c.available_at)
        .limit(bindparam("n"))
    )
    if skip_locked:
        due = due.with_for_update(skip_locked=True)
    return (
        update(_OUTBOX)
        .where(_c.id.in_(due.scalar_subquery()))
        .values(status="sending", claim=bindparam("claim"), attempts=_c.attempts + 1, available_at=bindparam("lease"))
        .returning(*_CLAIMED)
    )


_CLAIM = {"postgresql": _claim_statement(skip_locked=True), "sqlite": _claim_statement(skip_locked=False)}
_SETTLE = (
    update(_OUTBOX)
    .where(_c.id == bindparam("m_id"), _c.claim == bindparam("m_claim"))
    .values(
        status=bindparam("m_status"), sent_at=bindparam("m_sent_at"), provider_ref=bindparam("m_ref"),
        last_error=bindparam("m_error"), available_at=bindparam("m_available_at"), claim=None,
        attempts=_c.attempts - bindparam("m_refund"),
    )
    .returning(_c.id)
)


@dataclass(frozen=True)
class Outcome:
    id: str
    claim: str
    status: str  # sent | pending (retry) | dead | expired
    available_at: datetime
    sent_at: datetime | None = None
    provider_ref: str | None = None
    error: str | None = None
    event: dict[str, Any] | None = None
    #: Attempts given back (a worker that could not open the message did not attempt it).
    refund: int = 0
    #: A message the outcome itself queues (the institution's ``passcode.sent`` security event).
    follow_up: dict[str, Any] | None = None


def backoff(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Seconds before attempt ``attempt + 1``: exponential, capped, with "equal jitter" (half fixed,
    half random), so retries of many messages spread out but never come back at once."""
    delay = min(cap, base * 2 ** max(0, attempt - 1))
    return float(delay / 2 + rng.uniform(0, delay / 2))


class Worker:
    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        outbox: Outbox,
        renderer: Renderer,
        institutions: InstitutionCache,
        providers: dict[str, Provider],
        clock: Clock,
        audit_chain: AuditChain | None = None,
        events: SecurityEvents | None = None,
    ) -> None:
        self.audit_chain = audit_chain
        self.events = events
        self.settings = settings
        self.db = db
        self.outbox = outbox
        self.renderer = renderer
        self.institutions = institutions
        self.providers = providers
        self.clock = clock
        self.rng = random.Random()  # noqa: S311 - jitter, not a secret
        self._alarmed_at = -1e9
        self.outcomes: GroupCommit[Outcome] = GroupCommit(self._write_outcomes)
        self._stopping = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._slot_free = asyncio.Event()
        self._listener: asyncpg.Connection | None = None
        #: Seconds between polls while LISTENing: only leases that ran out and retries come due then.
        self.listen_poll = 1.0
        #: Set once ``run`` is ready to be woken, and when a dropped LISTEN connection is back.
        self.listening = asyncio.Event()
        self.relistened = asyncio.Event()

    # one pass (tests, `pwreset outbox` tools)

    async def run_once(self) -> int:
        """Claim and deliver everything due now; wait for the outcomes. How many were handled."""
        handled = 0
        while True:
            rows = await self.claim(100)
            if not rows:
                return handled
            handled += len(rows)
            await asyncio.gather(*(self.deliver(row) for row in rows))

    # the long-running loop

    async def run(self) -> None:
        await self._listen()
        self.listening.set()
        depth_task = asyncio.create_task(self._report_depth(), name="outbox-depth")
        seal_task = asyncio.create_task(self._seal_audit(), name="audit-seal")
        try:
            while not self._stopping.is_set():
                free = self.settings.worker_concurrency - len(self._inflight)
                claimed = 0
                if free > 0:
                    self.outbox.wake.clear()
                    try:
                        rows = await self.claim(min(free, 100))
                    except Exception as error:  # database away: keep trying, without a traceback per pass
                        log.warning("claiming failed: %s", type(error).__name__)
                        rows = []
                    claimed = len(rows)
                    for row in rows:
                        task = asyncio.create_task(self.deliver(row))
                        self._inflight.add(task)
                        task.add_done_callback(self._done)
                if claimed and claimed == free:
                    continue
                await self._idle(wait_for_slot=free <= 0)
        finally:
            for task in (depth_task, seal_task):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self._inflight:
                log.info("finishing %d sends in flight", len(self._inflight))
                await asyncio.gather(*self._inflight, return_exceptions=True)
            if self._listener is not None:
                with contextlib.suppress(Exception):
                    await self._listener.close()

    def stop(self) -> None:
        self._stopping.set()
        self.outbox.wake.set()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._slot_free.set()

    async def _idle(self, *, wait_for_slot: bool) -> None:
        if wait_for_slot:
            self._slot_free.clear()
            waiters = [self._slot_free.wait()]
            timeout: float | None = None
        else:
            if self._listener is not None and self._listener.is_closed():
                log.warning("the LISTEN connection closed: opening it again")
                self._listener = None
                await self._listen()
                if self._listener is not None:
                    self.relistened.set()
            waiters = [self.outbox.wake.wait()]
            timeout = self.listen_poll if self._listener is not None else self.settings.worker_poll_interval
        tasks = [asyncio.create_task(w) for w in waiters] + [asyncio.create_task(self._stopping.wait())]
        try:
            await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()

    async def _listen(self) -> None:
        if self.db.dialect != "postgresql":
            return
        try:
            args, kwargs = self.db.engine.dialect.create_connect_args(self.db.engine.url)
            self._listener = await asyncpg.connect(*args, **kwargs)
            await self._listener.add_listener(CHANNEL, lambda *_: self.outbox.wake.set())
        except (OSError, asyncpg.PostgresError) as error:
            log.warning("LISTEN %s failed (%s): polling every second instead", CHANNEL, type(error).__name__)
            self._listener = None

    async def _report_depth(self) -> None:
        stmt = (
            select(_c.channel, _c.status, func.count())
            .where(_c.status.in_(("pending", "sending")))
            .group_by(_c.channel, _c.status)
        )
        while True:
            with contextlib.suppress(Exception):
                async with self.db.autocommit() as conn:
                    rows = (await conn.execute(stmt)).all()
                metrics.set_depth({(channel, status): int(count) for channel, status, count in rows})
            await asyncio.sleep(5)

    async def _seal_audit(self) -> None:
        """Seal the audit chain's new events every few seconds (audit/chain.py): off the requests' path."""
        if self.audit_chain is None:
            return
        while True:
            try:
                await self.audit_chain.seal()
            except Exception as error:  # database away, or another node's sealer holds the chain
                log.warning("sealing the audit chain failed: %s", type(error).__name__)
            await asyncio.sleep(self.settings.audit_seal_interval)

    # claiming and delivering

    async def claim(self, n: int) -> Sequence[Any]:
        now = self.clock.now()
        params = {
            "now": now, "n": n, "claim": new_id(), "lease": now + timedelta(seconds=self.settings.outbox_lease),
        }
        async with self.db.engine.begin() as conn:
            rows = (await conn.execute(_CLAIM[self.db.dialect], params)).all()
        return [(row, params["claim"]) for row in rows]

    async def deliver(self, claimed: Any) -> None:
        row, claim = claimed
        try:
            outcome = await self._attempt(row, claim)
        except Exception as error:  # a bug in one message must not stop the worker
            log.exception("delivery of %s failed unexpectedly", row.id)
            outcome = self._failed(row, claim, PermanentFailure(f"internal error: {type(error).__name__}"))
        try:
            await self.outcomes.submit(outcome)
        except Exception as error:  # the lease runs out and the message is sent again: at least once
            log.warning("recording the outcome of %s failed: %s", row.id, type(error).__name__)

    async def _attempt(self, row: Any, claim: str) -> Outcome:
        now = self.clock.now()
        if row.not_after is not None and row.not_after <= now:
            return self._expired(row, claim)
        if row.attempts > self.settings.outbox_max_attempts:  # claimed again and again: workers died on it
            return self._failed(row, claim, PermanentFailure("attempts exhausted (lease expired each time)"))
        provider: Provider = self.providers[row.channel]
        try:
            opened = self.outbox.open(row)
        except NotOurKey as error:
            if error.damaged:  # our key, and the message does not open under it: no worker can send it
                return self._failed(row, claim, PermanentFailure("the sealed message is damaged"))
            if row.created_at <= self.clock.now() - timedelta(seconds=UNREADABLE_GIVE_UP):
                return self._failed(row, claim, PermanentFailure(f"no worker held its key for a week ({error})"))
            return self._unreadable(row, claim, error)
        try:
            institution = await self.institutions.get(row.institution_id)
            if institution.sandbox and row.channel != "WEBHOOK":  # a sandbox's messages stay in its inbox
                provider = SANDBOX_INBOX
            if row.channel == "WEBHOOK":  # a security event (events/): its body is the event itself
                rendered = Rendered(None, orjson.dumps(opened.variables.get("event", {})).decode())
            elif "text" in opened.legacy:  # queued by a version that rendered at request time
                rendered = Rendered(opened.legacy.get("subject"), opened.legacy["text"])
            elif row.kind == "passcode" and not opened.variables.get("code"):
                raise TemplateInvalid("a passcode message without its passcode")
            else:
                variables = {**opened.variables, **variables_for(
                    institution=institution.name, code=str(opened.variables.get("code", "")),
                    minutes=int(opened.variables.get("minutes", 0)), contact_line=institution.contact_line,
                    changed=str(opened.variables.get("changed", "phone")),
                )}
                rendered = await self.renderer.render(
                    institution_id=row.institution_id, kind=row.kind, channel=row.channel, language=row.language,
                    variables=variables,
                )
            outgoing = Outgoing(
                id=row.id, institution_id=row.institution_id, institution_name=institution.name, kind=row.kind,
                channel=row.channel, destination=opened.destination, language=row.language,
                subject=rendered.subject, text=rendered.text, html=rendered.html,
            )
        except (TemplateInvalid, InstitutionNotFound) as error:
            return self._failed(row, claim, PermanentFailure(str(error)))
        try:
            accepted = await asyncio.wait_for(provider.send(outgoing), timeout=self.settings.provider_timeout + 5)
        except DeliveryFailure as failure:
            return self._failed(row, claim, failure)
        except TimeoutError:
            return self._failed(row, claim, DeliveryFailure("timeout"))
        outcome = self._sent(row, claim, accepted, provider.name)
        if row.kind == "passcode" and self.events is not None:
            try:
                follow_up = await self.events.row(
                    row.institution_id, "passcode.sent", customer_id=row.customer_id, client_id=row.client_id,
                    correlation_id=row.correlation_id,
                    data={"contactMethodId": row.contact_method_id, "channel": row.channel},
                )
            except Exception as error:  # the passcode went: its outcome is recorded whatever the event does
                log.warning("the passcode.sent event of %s was not queued: %s", row.id, type(error).__name__)
            else:
                outcome = replace(outcome, follow_up=follow_up)
        return outcome

    def _sent(self, row: Any, claim: str, accepted: Accepted, provider: str) -> Outcome:
        now = self.clock.now()
        latency = (now - row.created_at).total_seconds()
        metrics.sent(row.channel, latency)
        log.info("message sent", extra={"message_id": row.id, "channel": row.channel,
                                        "destination": row.destination_masked, "attempt": row.attempts,
                                        "provider": provider, "latency_ms": round(latency * 1000)})
        return Outcome(
            row.id, claim, "sent", available_at=now, sent_at=now, provider_ref=accepted.provider_ref,
            event=self._event(row, "message.sent", "success", provider=provider, attempt=row.attempts),
        )

    def _failed(self, row: Any, claim: str, failure: DeliveryFailure) -> Outcome:
        now = self.clock.now()
        last = row.attempts >= self.settings.outbox_max_attempts
        if failure.permanent or last:
            metrics.dead(row.channel)
            reason = failure.reason if failure.permanent else f"attempts exhausted; last: {failure.reason}"
            log.warning("message dead", extra={"message_id": row.id, "channel": row.channel,
                                               "destination": row.destination_masked, "reason": reason})
            return Outcome(
                row.id, claim, "dead", available_at=now, error=reason,
                event=self._event(row, "message.dead", "failed", reason=reason, attempt=row.attempts),
            )
        delay = backoff(row.attempts, base=self.settings.outbox_backoff_base, cap=self.settings.outbox_backoff_cap,
                        rng=self.rng)
        if failure.retry_after is not None:
            delay = max(delay, min(failure.retry_after, self.settings.outbox_backoff_cap))
        retry_at = now + timedelta(seconds=delay)
        if row.not_after is not None and retry_at >= row.not_after:
            return self._expired(row, claim, reason=failure.reason)
        metrics.retried(row.channel)
        log.info("message will be retried", extra={"message_id": row.id, "channel": row.channel,
                                                   "destination": row.destination_masked, "reason": failure.reason,
                                                   "retry_in_s": round(delay, 1)})
        return Outcome(row.id, claim, "pending", available_at=retry_at, error=failure.reason)

    def _unreadable(self, row: Any, claim: str, error: NotOurKey) -> Outcome:
        """Sealed under a key this worker does not hold: a worker started with the wrong or an old
        PWRESET_SECRET_KEY, or a rotation whose old key is missing from PWRESET_OLD_SECRET_KEYS. The
        message is not at fault: it goes back to the queue with its attempt given back, for a
        worker that holds the key, and this worker raises the alarm."""
        metrics.unreadable(row.channel)
        now = time.monotonic()
        if now - self._alarmed_at > 60:
            self._alarmed_at = now
            log.error(
                "message %s is sealed under key %s, which this worker does not hold (its key is %s); it is "
                "left for a worker that does: check PWRESET_SECRET_KEY and PWRESET_OLD_SECRET_KEYS on every node",
                row.id, error.key_id or "unknown", self.outbox.sealer.key_id,
            )
        retry_at = self.clock.now() + timedelta(seconds=UNREADABLE_RETRY)
        if row.not_after is not None and retry_at >= row.not_after:
            retry_at = row.not_after  # (a worker that holds the key may still send it before then)
        return Outcome(row.id, claim, "pending", available_at=retry_at, error=str(error), refund=1)

    def _expired(self, row: Any, claim: str, *, reason: str | None = None) -> Outcome:
        metrics.expired(row.channel)
        log.info("message expired", extra={"message_id": row.id, "channel": row.channel,
                                           "destination": row.destination_masked})
        details = {"reason": reason} if reason else {}
        return Outcome(
            row.id, claim, "expired", available_at=self.clock.now(), error=reason or "passcode expired before delivery",
            event=self._event(row, "message.expired", "dropped", **details),
        )

    def _event(self, row: Any, event_type: str, outcome: str, **details: Any) -> dict[str, Any]:
        return audit.event_row(
            clock=self.clock, event_type=event_type, outcome=outcome, actor="worker",
            institution_id=row.institution_id, client_id=row.client_id, customer_id=row.customer_id,
            correlation_id=row.correlation_id,
            details={"messageId": row.id, "kind": row.kind, "channel": row.channel,
                     "contactMethodId": row.contact_method_id, "destination": row.destination_masked, **details},
        )

    async def _write_outcomes(self, batch: list[Outcome]) -> None:
        async with self.db.engine.begin() as conn:
            settled = set()
            for o in batch:  # one statement each: RETURNING tells which claims still held
                params = {"m_id": o.id, "m_claim": o.claim, "m_status": o.status, "m_sent_at": o.sent_at,
                          "m_ref": o.provider_ref, "m_error": o.error, "m_available_at": o.available_at,
                          "m_refund": o.refund}
                if (await conn.execute(_SETTLE, params)).first() is not None:
                    settled.add(o.id)
            # A worker that lost its claim (the lease ran out mid-send) records nothing, not even
            # in the audit trail: the new holder's outcome is the one that counts.
            await copy_rows(conn, _AUDIT, [o.event for o in batch if o.event is not None and o.id in settled])
            follow_ups = [o.follow_up for o in batch if o.follow_up is not None and o.id in settled]
            if follow_ups:
                await conn.execute(insert(OutboxMessage), follow_ups)
                await notify(conn)
        if follow_ups:
            self.outbox.committed([row["channel"] for row in follow_ups])

    async def close(self) -> None:
        for provider in {id(p): p for p in self.providers.values()}.values():
            await provider.close()
