"""Tamper evidence for the audit trail: sealed blocks of events, chained by a keyed hash (PCI DSS
10.3.2 to 10.3.4; decision 0012).

Writers insert events as before (a reset request's event goes out in its group commit): nothing on a
request's path waits for a chain head. A sealer (in every worker, ``pwreset audit seal``) then takes
each chain's unsealed events in id order, a block at a time, under a lock on the chain:

- each event's ``mac``: HMAC-SHA256, under a key derived from ``PWRESET_SECRET_KEY``, of its content;
- a seal: HMAC of the chain, the seal's number, the previous seal's digest and every (id, mac) of the
  block, in order.

``verify`` recomputes both and names what it finds: an **edited** event (its content no longer gives
its mac), a **deleted** or **inserted** one (the block's count), a **reordered** block (every event
intact, the sequence not), a **missing** seal (a gap in the numbers) and a **broken** link (a seal
that does not follow from the one before). A chain is an institution's events (``-``: events of no
institution). What an attacker with the database could still do without the key: change an event in
the seconds before its seal, or cut the newest seals off the end; ``verify`` prints the head (number
and digest) so an operator can keep it elsewhere, and counts events waiting for a seal.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from prometheus_client import Counter
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.audit import service as audit
from pwreset.audit.models import AuditEvent, AuditExport, AuditSeal
from pwreset.db import Database
from pwreset.kit.clock import Clock
from pwreset.kit.crypto import KeyedHasher

H_EVENT = "audit-event"
H_SEAL = "audit-seal"
H_PURGE = "audit-purge"
H_EXPORT = "audit-export"
#: An event dated this long before the last event of the seal before its own is reported as back-dated:
#: events are sealed in id order, so their times only go back by as much as a transaction commits late
#: (an hour is far beyond any), while an event inserted afterwards with an old date goes back further.
LATE_TOLERANCE = timedelta(hours=1)
#: What no purge may reach, whatever the setting (PCI DSS 10.5.1's year).
MIN_RETENTION = timedelta(days=365)
GENESIS = "0" * 64
NO_INSTITUTION = "-"
BLOCK = 2_000
SEALED = Counter("pwreset_audit_events_sealed_total", "Audit events sealed into the chain")

_e = AuditEvent.__table__.c
_COLUMNS = (
    _e.id, _e.occurred_at, _e.event_type, _e.outcome, _e.actor, _e.institution_id, _e.client_id, _e.customer_id,
    _e.correlation_id, _e.details, _e.origin_ip, _e.user_agent, _e.originating_ip, _e.mac, _e.seal_id,
)


_MARK = text(
    "UPDATE audit_events AS e SET mac = v.mac, seal_id = :seal "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:macs AS text[])) AS v(id, mac) WHERE e.id = v.id"
)


def chain_of(institution_id: str | None) -> str:
    return institution_id if institution_id else NO_INSTITUTION


def _in_chain(chain: str) -> Any:
    return _e.institution_id.is_(None) if chain == NO_INSTITUTION else _e.institution_id == chain


def _when(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def content(row: Any) -> str:
    """What an event's mac covers: every field but its id and seal (a moved event keeps its mac; the
    seal's sequence of ids shows the move)."""
    return orjson.dumps(
        [
            _when(row.occurred_at), row.event_type, row.outcome, row.actor,
            row.institution_id, row.client_id, row.customer_id, row.correlation_id, row.details or {},
            row.origin_ip, row.user_agent, row.originating_ip,
        ],
        option=orjson.OPT_SORT_KEYS,
    ).decode()


def _seal_message(seal: AuditSeal, entries: Sequence[tuple[int, str]]) -> str:
    """What a seal's digest covers: every field of the seal but the digest and the purge, and the block."""
    head = [seal.chain, str(seal.seq), seal.prev_digest, str(seal.count), str(seal.first_event_id),
            str(seal.last_event_id), _when(seal.first_at), _when(seal.last_at), _when(seal.sealed_at)]
    return "\x00".join([*head, *(f"{event_id}:{mac}" for event_id, mac in entries)])


def _purge_message(seal: AuditSeal) -> str:
    assert seal.purged_at is not None
    return "\x00".join([seal.chain, str(seal.seq), seal.digest, _when(seal.last_at), _when(seal.purged_at)])


def _export_message(row: AuditExport) -> str:
    return "\x00".join([row.chain, _when(row.since), _when(row.until), row.format, str(row.events),
                         _when(row.started_at)])


@dataclass
class Finding:
    kind: str  # edited | deleted | inserted | reordered | backdated | missing_seal | broken_link | forged_purge
    seal: int | None = None
    event_id: int | None = None
    detail: str = ""

    def __str__(self) -> str:
        where = f"seal {self.seal}" if self.seal is not None else ""
        if self.event_id is not None:
            where += f", event {self.event_id}"
        return f"{self.kind}: {where}{' (' + self.detail + ')' if self.detail else ''}"


@dataclass
class Report:
    chain: str
    seals: int = 0
    events: int = 0
    purged_seals: int = 0
    unsealed: int = 0
    oldest_unsealed: datetime | None = None
    head_seq: int = 0
    head_digest: str = GENESIS
    findings: list[Finding] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.findings


@dataclass(frozen=True)
class Purged:
    seals: int
    events: int
    uncovered: int  # seals past retention that no export covered (kept, unless forced)
    tampered: int = 0  # seals past retention that do not verify (kept: their dates cannot be trusted)


class NothingToDo(Exception):
    pass


class AuditChain:
    def __init__(self, *, db: Database, hasher: KeyedHasher, clock: Clock) -> None:
        self.db = db
        self.hasher = hasher
        self.clock = clock

    def mac(self, row: Any) -> str:
        return self.hasher.digest(H_EVENT, content(row))

    # sealing

    async def seal(self, *, chain: str | None = None, limit: int | None = None) -> int:
        """Seal what waits, chain by chain, a block at a time; the number of events sealed."""
        sealed = 0
        chains = [chain] if chain is not None else await self._waiting_chains()
        for name in chains:
            while limit is None or sealed < limit:
                done = await self._seal_block(name)
                sealed += done
                SEALED.inc(done)
                if done < BLOCK:
                    break
        return sealed

    async def _waiting_chains(self) -> list[str]:
        async with self.db.reading() as session:
            rows = (await session.execute(select(_e.institution_id).where(_e.seal_id.is_(None)).distinct())).all()
        return sorted({chain_of(row[0]) for row in rows})

    async def _seal_block(self, chain: str) -> int:
        async with self.db.transaction() as session:
            if self.db.dialect == "postgresql":  # one sealer per chain at a time; SQLite has one writer
                await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"audit:{chain}"})
            last = (
                await session.execute(
                    select(AuditSeal.seq, AuditSeal.digest).where(AuditSeal.chain == chain)
                    .order_by(AuditSeal.seq.desc()).limit(1)
                )
            ).first()
            rows = (
                await session.execute(
                    select(*_COLUMNS).where(_e.seal_id.is_(None), _in_chain(chain)).order_by(_e.id).limit(BLOCK)
                )
            ).all()
            if not rows:
                return 0
            seq, prev = (last[0] + 1, last[1]) if last is not None else (1, GENESIS)
            entries = [(row.id, self.mac(row)) for row in rows]
            seal = AuditSeal(
                chain=chain, seq=seq, count=len(rows), first_event_id=rows[0].id, last_event_id=rows[-1].id,
                first_at=min(row.occurred_at for row in rows), last_at=max(row.occurred_at for row in rows),
                prev_digest=prev, sealed_at=self.clock.now(),
            )
            seal.digest = self.hasher.digest(H_SEAL, _seal_message(seal, entries))
            session.add(seal)
            await session.flush()
            if self.db.dialect == "postgresql":  # one statement for the block (per row, PostgreSQL is the bottleneck)
                await session.execute(_MARK, {"seal": seal.id, "ids": [i for i, _ in entries],
                                              "macs": [m for _, m in entries]})
            else:
                await session.execute(
                    update(AuditEvent),
                    [{"id": event_id, "mac": mac, "seal_id": seal.id} for event_id, mac in entries],
                )
            return len(rows)

    # verifying

    async def verify(self, chain: str) -> Report:
        report = Report(chain)
        async with self.db.reading() as session:
            seals = (
                await session.scalars(select(AuditSeal).where(AuditSeal.chain == chain).order_by(AuditSeal.seq))
            ).all()
            prev, expected, previous = GENESIS, 1, None
            for seal in seals:
                if seal.seq != expected:
                    report.findings.append(Finding("missing_seal", seal.seq, detail=f"seals {expected} to "
                                                   f"{seal.seq - 1} are gone"))
                if seal.prev_digest != prev:
                    report.findings.append(Finding("broken_link", seal.seq, detail="does not follow the seal before"))
                if seal.purged_at is not None:
                    report.purged_seals += 1
                    await self._verify_purge(session, seal, report)
                else:
                    await self._verify_block(session, seal, report, previous)
                report.seals += 1
                prev, expected, previous = seal.digest, seal.seq + 1, seal
            report.head_seq, report.head_digest = (seals[-1].seq, seals[-1].digest) if seals else (0, GENESIS)
            waiting = (
                await session.execute(
                    select(func.count(), func.min(_e.occurred_at)).where(_e.seal_id.is_(None), _in_chain(chain))
                )
            ).one()
            report.unsealed, report.oldest_unsealed = int(waiting[0]), waiting[1]
        return report

    async def _verify_purge(self, session: AsyncSession, seal: AuditSeal, report: Report) -> None:
        """A purged seal: its purge made with the key, past the least retention, and nothing left under it."""
        if seal.purge_mac is None or not self.hasher.verify(H_PURGE, _purge_message(seal), seal.purge_mac):
            report.findings.append(Finding("forged_purge", seal.seq, detail="marked purged without the key"))
        elif seal.purged_at is not None and seal.last_at > seal.purged_at - MIN_RETENTION:
            report.findings.append(Finding("forged_purge", seal.seq, detail="purged inside the retention"))
        left = await session.scalar(select(func.count()).where(_e.seal_id == seal.id))
        if left:
            report.findings.append(Finding("inserted", seal.seq, detail=f"{left} events under a purged seal"))

    async def _verify_block(
        self, session: AsyncSession, seal: AuditSeal, report: Report, previous: AuditSeal | None = None
    ) -> None:
        rows = (await session.execute(select(*_COLUMNS).where(_e.seal_id == seal.id).order_by(_e.id))).all()
        report.events += len(rows)
        edited = False
        entries: list[tuple[int, str]] = []
        for row in rows:  # (each event's content made and hashed once: an edited one skips the seal's check)
            if row.mac is None or not self.hasher.verify(H_EVENT, content(row), row.mac) or \
                    chain_of(row.institution_id) != seal.chain:
                report.findings.append(Finding("edited", seal.seq, row.id, "its content does not give its mac"))
                edited = True
            elif previous is not None and row.occurred_at < previous.last_at - LATE_TOLERANCE:
                report.findings.append(Finding("backdated", seal.seq, row.id, "dated long before the events sealed "
                                               "before it: written afterwards"))
            entries.append((row.id, row.mac or ""))
        if len(rows) < seal.count:
            report.findings.append(Finding("deleted", seal.seq, detail=f"{seal.count - len(rows)} of {seal.count} "
                                           "events are gone"))
        elif len(rows) > seal.count:
            report.findings.append(Finding("inserted", seal.seq, detail=f"{len(rows) - seal.count} events more "
                                           f"than the {seal.count} sealed"))
        elif not edited and not self.hasher.verify(H_SEAL, _seal_message(seal, entries), seal.digest):
            report.findings.append(Finding("reordered", seal.seq, detail="every event is intact; their order or "
                                           "ids, or the seal's own fields, are not the sealed ones"))

    # export

    async def export(
        self, chain: str, *, since: datetime, until: datetime, batch: int = 1_000
    ) -> AsyncIterator[Any]:
        """The chain's events with ``since <= occurred_at < until``, in id order, ``batch`` rows at a
        time from a server-side cursor: memory stays bounded whatever the range holds."""
        statement = (
            select(*_COLUMNS, AuditSeal.seq.label("seal_seq"))
            .outerjoin(AuditSeal, AuditSeal.id == _e.seal_id)
            .where(_in_chain(chain), _e.occurred_at >= since, _e.occurred_at < until)
            .order_by(_e.id)
            .execution_options(yield_per=batch)
        )
        async with self.db.reading() as session:
            result = await session.stream(statement)
            async for partition in result.partitions(batch):
                for row in partition:
                    yield row

    async def record_export(
        self, chain: str, *, since: datetime, until: datetime, fmt: str, events: int, started_at: datetime
    ) -> None:
        async with self.db.transaction() as session:
            row = AuditExport(chain=chain, since=since, until=until, format=fmt, events=events,
                              exported_at=self.clock.now(), started_at=started_at)
            row.mac = self.hasher.digest(H_EXPORT, _export_message(row))
            session.add(row)
            await audit.record_event(
                session, clock=self.clock, event_type="audit.exported", outcome="success", actor="cli",
                institution_id=None if chain == NO_INSTITUTION else chain,
                details={"since": since.isoformat(), "until": until.isoformat(), "format": fmt, "events": events},
            )

    # retention

    async def purge(self, chain: str, *, retention_days: int, force: bool = False) -> Purged:
        """Delete the events of whole seals older than the retention, never one inside it; only what an
        export made after the seal covered, unless ``force``; never a seal that does not verify (its dates
        could be forged). The seals stay, marked purged with the key, so the chain still verifies."""
        await self.seal(chain=chain)
        cutoff = self.clock.now() - max(timedelta(days=retention_days), MIN_RETENTION)
        async with self.db.transaction() as session:
            seals = (
                await session.scalars(
                    select(AuditSeal).where(
                        AuditSeal.chain == chain, AuditSeal.purged_at.is_(None), AuditSeal.last_at < cutoff
                    ).order_by(AuditSeal.seq)
                )
            ).all()
            exports = [
                row for row in (await session.scalars(select(AuditExport).where(AuditExport.chain == chain))).all()
                if self.hasher.verify(H_EXPORT, _export_message(row), row.mac)
            ]
            intact = []
            for seal in seals:
                check = Report(chain)
                await self._verify_block(session, seal, check)
                if check.intact:
                    intact.append(seal)
            chosen = [s for s in intact if force or any(
                e.since <= s.first_at and s.last_at < e.until and s.sealed_at <= e.started_at for e in exports
            )]
            deleted = 0
            now = self.clock.now()
            for seal in chosen:
                result = await session.execute(delete(AuditEvent).where(_e.seal_id == seal.id))
                deleted += max(result.rowcount or 0, 0)  # type: ignore[attr-defined]
                seal.purged_at = now
                seal.purge_mac = self.hasher.digest(H_PURGE, _purge_message(seal))
            uncovered = len(intact) - len(chosen)
            await audit.record_event(
                session, clock=self.clock, event_type="audit.purged", outcome="forced" if force else "success",
                actor="cli", institution_id=None if chain == NO_INSTITUTION else chain,
                details={"seals": len(chosen), "events": deleted, "retentionDays": retention_days,
                         "keptUnexported": uncovered, "keptTampered": len(seals) - len(intact)},
            )
        return Purged(len(chosen), deleted, uncovered, len(seals) - len(intact))


# export formats


def jsonl(row: Any) -> bytes:
    return orjson.dumps({
        "id": row.id, "occurredAt": _when(row.occurred_at),
        "eventType": row.event_type, "outcome": row.outcome, "actor": row.actor, "institutionId": row.institution_id,
        "clientId": row.client_id, "customerId": row.customer_id, "correlationId": row.correlation_id,
        "originIp": row.origin_ip, "userAgent": row.user_agent, "originatingIp": row.originating_ip,
        "details": row.details or {}, "seal": row.seal_seq, "mac": row.mac,
    }) + b"\n"


_HIGH = ("locked", "cooling_off", "sim_swapped", "suspended", "forced")
_MEDIUM = ("wrong", "refused", "policy", "failed", "denied", "rate_limited", "destination_changed")


def _severity(outcome: str) -> int:
    if any(word in outcome for word in _HIGH):
        return 8
    if any(word in outcome for word in _MEDIUM):
        return 5
    return 3


def _cef_header(value: str) -> str:
    return value.replace("\\", "\\\\").replace("|", "\\|")


def _cef_value(value: object) -> str:
    text_value = value if isinstance(value, str) else orjson.dumps(value).decode()
    return (text_value.replace("\\", "\\\\").replace("=", "\\=").replace("\r", "\\r").replace("\n", "\\n"))


def cef(row: Any, *, version: str) -> bytes:
    """ArcSight Common Event Format (CEF:0): the header's fields, then key=value extensions."""
    millis = math.floor(row.occurred_at.timestamp() * 1000)
    extensions = [("rt", str(millis)), ("outcome", row.outcome), ("act", row.event_type),
                  ("externalId", str(row.id))]
    for key, value in (("src", row.origin_ip), ("requestClientApplication", row.user_agent), ("suser", row.actor),
                       ("duid", row.customer_id)):
        if value:
            extensions.append((key, value))
    custom = (("institutionId", row.institution_id), ("clientId", row.client_id),
              ("correlationId", row.correlation_id), ("originatingIp", row.originating_ip),
              ("details", row.details or None), ("mac", row.mac))
    for number, (label, value) in enumerate(custom, 1):
        if value:
            extensions += [(f"cs{number}Label", label), (f"cs{number}", value)]
    body = " ".join(f"{key}={_cef_value(value)}" for key, value in extensions)
    header = "|".join(_cef_header(part) for part in (
        "CEF:0", "pwreset", "pwreset", version, row.event_type, row.event_type, str(_severity(row.outcome))
    ))
    return f"{header}|{body}\n".encode()
