"""The token service (contract sections 2 to 5) and partner-client administration.

Grants follow RFC 6749: client credentials (section 4.4), resource-owner password (4.3) and refresh
(6) with rotation and reuse detection (OAuth 2.0 Security BCP, section 4.14). Revocation follows
RFC 7009, introspection RFC 7662.

Bookkeeping before a domain error is committed on purpose (failed-login counts, revoking a family
whose refresh token was reused): callers commit the unit of work, then answer with the error.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote

from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.access.principal import BearerExpired, BearerInvalid, BearerMissing, Principal
from pwreset.audit import service as audit
from pwreset.config import Settings
from pwreset.db import Database, GroupCommitter, on_commit
from pwreset.institutions import repository as institutions
from pwreset.institutions.errors import InstitutionNotFound
from pwreset.kit.clock import Clock
from pwreset.kit.crypto import KeyedHasher, new_id, new_secret
from pwreset.kit.text import storable
from pwreset.oauth import repository, scopes
from pwreset.oauth.cache import CachedClient, CachedToken, TokenCache
from pwreset.oauth.directory import CustomerDirectory
from pwreset.oauth.errors import (
    ClientNotFound,
    GrantNotAllowed,
    InvalidClient,
    InvalidClientSettings,
    InvalidInstitution,
    InvalidRefreshToken,
    InvalidScope,
    InvalidUserCredentials,
    MissingPassword,
    MissingRefreshToken,
    MissingToken,
    MissingUsername,
    UnsupportedGrant,
)
from pwreset.oauth.models import ApiClient, Token
from pwreset.oauth.revocation import RevocationFeed

ACCESS_PREFIX = "pwr_at_"
REFRESH_PREFIX = "pwr_rt_"
SECRET_PREFIX = "pwr_cs_"  # noqa: S105 - a prefix, not a secret
SHARED_KEY_PREFIX = "pwr_ck_"
#: Hash purposes: a hash of one kind never matches another.
H_CLIENT_SECRET = "client-secret"  # noqa: S105 - a hash label
H_ACCESS = "access-token"
H_REFRESH = "refresh-token"
_MAX_TOKEN_LENGTH = 128


@dataclass(frozen=True, slots=True)
class TokenRequest:
    grant_type: str | None
    institution_id: str | None = None
    scope: str | None = None
    username: str | None = None
    password: str | None = None
    refresh_token: str | None = None


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    access_token: str
    expires_in: int
    scope: str
    refresh_token: str | None = None
    refresh_token_expires_in: int | None = None

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": "Bearer",
            # Strings of digits: Candescent's spec types both lifetimes as strings (wire contract 2).
            "expires_in": str(self.expires_in),
            "scope": self.scope,
        }
        if self.refresh_token is not None:
            body["refresh_token"] = self.refresh_token
            body["refresh_token_expires_in"] = str(self.refresh_token_expires_in)
        return body


@dataclass(frozen=True, slots=True)
class NewClient:
    client: ApiClient
    secret_key: str


#: The longest a replaced secret may stay valid after a rotation.
MAX_ROTATION_GRACE = timedelta(days=30)


class OAuthService:
    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        hasher: KeyedHasher,
        clock: Clock,
        cache: TokenCache,
        feed: RevocationFeed,
        directory: CustomerDirectory,
        token_writer: GroupCommitter,
    ) -> None:
        self.settings = settings
        self.db = db
        self.hasher = hasher
        self.clock = clock
        self.cache = cache
        self.feed = feed
        self.directory = directory
        self.token_writer = token_writer
        #: Shared keys of existing clients, for addresses over their failure limit (read on a miss at
        #: most once a second; a revoked client left in it only gets its ordinary 401).
        self._known_keys: set[str] = set()
        self._known_at = -1e9
        self._known_lock = asyncio.Lock()

    # Client authentication (RFC 6749 section 2.3.1)

    #: Seconds between reads of the set of existing shared keys (a miss reads it at most this often).
    KNOWN_KEYS_TTL = 1.0

    async def is_known_shared_key(self, authorization: str | None) -> bool:
        """Whether the Basic header names an existing client, without a database read per call: the
        set of shared keys is read again on a miss, at most once a second and one reader at a time.
        For an address over its failure limit, whose unknown keys are refused before any lookup."""
        try:
            shared_key, _ = _parse_basic(authorization)
        except InvalidClient:
            return False
        if self.cache.get_client(shared_key, self.clock.timestamp()) is not None:
            return True
        if shared_key in self._known_keys:
            return True
        async with self._known_lock:  # one refresh at a time, at most one a second on misses
            now = time.monotonic()
            if now - self._known_at > self.KNOWN_KEYS_TTL and shared_key not in self._known_keys:
                async with self.db.reading() as session:
                    self._known_keys = set(await repository.active_shared_keys(session))
                self._known_at = now
        return shared_key in self._known_keys

    async def authenticate_client(self, authorization: str | None) -> CachedClient:
        """The calling partner application; the database is read only on a cache miss."""
        shared_key, secret = _parse_basic(authorization)
        now = self.clock.timestamp()
        client = self.cache.get_client(shared_key, now)
        if client is None:
            async with self.db.reading() as session:
                row = await repository.client_by_shared_key(session, shared_key)
            if row is None or row.revoked_at is not None:
                self.hasher.verify(H_CLIENT_SECRET, secret, "")  # the same work as a known client:
                self.hasher.verify(H_CLIENT_SECRET, secret, "")  # its secret and a previous one
                raise InvalidClient()
            client = CachedClient(
                client_id=row.id,
                institution_id=row.institution_id,
                shared_key=row.shared_key,
                secret_hash=row.secret_hash,
                scopes=scopes.parse(row.scopes),
                grant_types=scopes.parse(row.grant_types),
                cached_at=now,
                previous_secret_hash=row.previous_secret_hash,
                previous_expires_at=(
                    row.previous_secret_expires_at.timestamp() if row.previous_secret_expires_at else 0.0
                ),
                trusted_origin=row.trusted_origin,
            )
            self.cache.put_client(client)
        current = self.hasher.verify(H_CLIENT_SECRET, secret, client.secret_hash)
        # The secret a rotation replaced, during its grace period; checked either way (the same work).
        previous = self.hasher.verify(H_CLIENT_SECRET, secret, client.previous_secret_hash or "")
        if not (current or (previous and client.previous_expires_at > now)):
            raise InvalidClient(shared_key=client.shared_key)
        return client

    # The token endpoint (contract section 2)

    async def issue_client_token(self, client: CachedClient, request: TokenRequest) -> IssuedTokens:
        """The ``client_credentials`` grant: an institution token, written by group commit.

        This is the hot path of the token endpoint; its one row goes through
        :class:`~pwreset.db.GroupCommitter` and is committed before the token is returned.
        """
        granted = self._check_request(client, request)
        issued, row, entry = self._new_access_token(client, customer_id=None, granted=granted, family_id=None)
        await self.token_writer.insert(row)
        self.cache.put_token(row["token_hash"], entry)
        return issued

    async def issue_held_client_token(self, client: ApiClient) -> IssuedTokens:
        """A ``client_credentials`` token for a client the service itself holds, without its secret (the
        portal's test drive, whose client's secret was never kept): the same token as the endpoint's."""
        if client.revoked_at is not None:
            raise InvalidClient()
        held = CachedClient(
            client_id=client.id, institution_id=client.institution_id, shared_key=client.shared_key,
            secret_hash=client.secret_hash, scopes=scopes.parse(client.scopes),
            grant_types=scopes.parse(client.grant_types), cached_at=self.clock.timestamp(),
        )
        return await self.issue_client_token(
            held, TokenRequest(grant_type=scopes.GRANT_CLIENT_CREDENTIALS, institution_id=client.institution_id)
        )

    def _check_request(self, client: CachedClient, request: TokenRequest) -> frozenset[str]:
        """Grant type, then institution, then scopes (contract section 2); the scopes granted."""
        grant = request.grant_type
        if grant not in scopes.KNOWN_GRANTS:
            raise UnsupportedGrant()
        if grant not in client.grant_types:
            raise GrantNotAllowed()
        if grant == scopes.GRANT_REFRESH_TOKEN:
            if request.institution_id and request.institution_id != client.institution_id:
                raise InvalidInstitution()
            return client.scopes
        if not request.institution_id or request.institution_id != client.institution_id:
            raise InvalidInstitution()
        return _narrow(client.scopes, request.scope)

    async def issue(self, session: AsyncSession, client: CachedClient, request: TokenRequest) -> IssuedTokens:
        """The ``password`` and ``refresh_token`` grants, in the caller's transaction."""
        granted = self._check_request(client, request)
        if request.grant_type == scopes.GRANT_REFRESH_TOKEN:
            return await self._refresh(session, client, request)
        if request.grant_type == scopes.GRANT_CLIENT_CREDENTIALS:
            return await self.issue_client_token(client, request)
        if not request.username:
            raise MissingUsername()
        if not request.password:
            raise MissingPassword()
        customer_id = await self.directory.authenticate(
            session, institution_id=client.institution_id, username=request.username, password=request.password
        )
        if customer_id is None:
            raise InvalidUserCredentials()
        refresh_expires = self.clock.now() + timedelta(seconds=self.settings.refresh_token_ttl)
        return self._mint(
            session, client, customer_id=customer_id, granted=granted, family_id=new_id(),
            refresh_expires=refresh_expires,
        )

    async def _refresh(self, session: AsyncSession, client: CachedClient, request: TokenRequest) -> IssuedTokens:
        if not request.refresh_token:
            raise MissingRefreshToken()
        found = await repository.token_by_hash(session, self.hasher.digests(H_REFRESH, request.refresh_token))
        now = self.clock.now()
        if found is None:
            raise InvalidRefreshToken()
        old = found[0]
        if old.kind != "refresh" or old.client_id != client.client_id:
            raise InvalidRefreshToken()
        if old.revoked_at is not None or old.expires_at <= now or old.family_id is None:
            raise InvalidRefreshToken()
        # Refuse a bad scope before spending the token, so a client's mistake doesn't end its session.
        granted = _narrow(scopes.parse(old.scope), request.scope)
        assert old.customer_id is not None
        # Lock the customer first: a reset committing meanwhile has revoked this token by the time
        # the spend below runs, and a session older than a password change ends here.
        if not await self.directory.may_refresh(
            session, institution_id=old.institution_id, customer_id=old.customer_id, issued_at=old.issued_at
        ):
            await self._revoke_family(session, old.family_id)
            raise InvalidRefreshToken()
        if old.used_at is not None or not await repository.spend_refresh_token(session, token_id=old.id, at=now):
            # A spent (or meanwhile revoked) refresh token came back: end the whole family.
            await self._revoke_family(session, old.family_id)
            await audit.record_event(
                session, clock=self.clock, event_type="token.refresh_reuse", outcome="family_revoked",
                institution_id=old.institution_id, client_id=client.client_id, customer_id=old.customer_id,
            )
            raise InvalidRefreshToken()
        return self._mint(
            session, client, customer_id=old.customer_id, granted=granted, family_id=old.family_id,
            refresh_expires=old.expires_at,
        )

    def _new_access_token(
        self, client: CachedClient, *, customer_id: str | None, granted: frozenset[str], family_id: str | None
    ) -> tuple[IssuedTokens, dict[str, Any], CachedToken]:
        """A fresh access token: what the client gets, the row to store, the cache entry."""
        now = self.clock.now()
        ttl = self.settings.access_token_ttl
        scope = scopes.render(granted)
        access = new_secret(ACCESS_PREFIX)
        row: dict[str, Any] = {
            "id": new_id(), "kind": "access", "token_hash": self.hasher.digest(H_ACCESS, access),
            "client_id": client.client_id, "institution_id": client.institution_id, "customer_id": customer_id,
            "scope": scope, "family_id": family_id, "issued_at": now, "expires_at": now + timedelta(seconds=ttl),
            "revoked_at": None, "used_at": None,
        }
        entry = CachedToken(
            token_id=row["id"], client_id=client.client_id, institution_id=client.institution_id,
            customer_id=customer_id, family_id=family_id, scopes=granted, issued_at=now.timestamp(),
            expires_at=now.timestamp() + ttl, cached_at=now.timestamp(), stored_hash=row["token_hash"],
            trusted_origin=client.trusted_origin,
        )
        return IssuedTokens(access_token=access, expires_in=ttl, scope=scope), row, entry

    def _mint(
        self,
        session: AsyncSession,
        client: CachedClient,
        *,
        customer_id: str,
        granted: frozenset[str],
        family_id: str,
        refresh_expires: datetime,
    ) -> IssuedTokens:
        """An access and a refresh token of one family, added to the caller's transaction."""
        issued, row, entry = self._new_access_token(
            client, customer_id=customer_id, granted=granted, family_id=family_id
        )
        session.add(Token(**row))
        refresh = new_secret(REFRESH_PREFIX)
        now = row["issued_at"]
        session.add(
            Token(
                id=new_id(), kind="refresh", token_hash=self.hasher.digest(H_REFRESH, refresh),
                client_id=client.client_id, institution_id=client.institution_id, customer_id=customer_id,
                scope=issued.scope, family_id=family_id, issued_at=now, expires_at=refresh_expires,
            )
        )
        on_commit(session, lambda: self.cache.put_token(row["token_hash"], entry))
        return IssuedTokens(
            access_token=issued.access_token, expires_in=issued.expires_in, scope=issued.scope,
            refresh_token=refresh,
            refresh_token_expires_in=max(0, int((refresh_expires - now).total_seconds())),
        )

    # Revocation (RFC 7009) and introspection (RFC 7662)

    async def revoke(self, session: AsyncSession, client: CachedClient, token: str | None) -> None:
        """Revoke one of the client's own tokens; unknown tokens are ignored (RFC 7009 section 2.2)."""
        if not token:
            raise MissingToken()
        found = await self._lookup(session, token)
        if found is None or found.client_id != client.client_id:
            return
        now = self.clock.now()
        if found.kind == "refresh" and found.family_id is not None:
            await self._revoke_family(session, found.family_id)
        else:
            await repository.revoke_token(session, token_id=found.id, at=now)
            await self.feed.record(session, kind="token", key=found.token_hash)

    async def introspect(self, session: AsyncSession, client: CachedClient, token: str | None) -> dict[str, Any]:
        if not token:
            raise MissingToken()
        found = await self._lookup(session, token)
        now = self.clock.now()
        if (
            found is None
            or found.client_id != client.client_id
            or found.revoked_at is not None
            or found.expires_at <= now
            or found.used_at is not None
        ):
            return {"active": False}
        body: dict[str, Any] = {
            "active": True,
            "scope": found.scope,
            "client_id": client.shared_key,
            "exp": int(found.expires_at.timestamp()),
            "iat": int(found.issued_at.timestamp()),
            "token_type": "Bearer" if found.kind == "access" else "refresh_token",
            "institution_id": found.institution_id,
        }
        if found.customer_id is not None:
            body["sub"] = found.customer_id
        return body

    async def _lookup(self, session: AsyncSession, token: str) -> Token | None:
        if token.startswith(REFRESH_PREFIX):
            purpose = H_REFRESH
        elif token.startswith(ACCESS_PREFIX):
            purpose = H_ACCESS
        else:
            return None
        found = await repository.token_by_hash(session, self.hasher.digests(purpose, token))
        return None if found is None else found[0]

    async def _revoke_family(self, session: AsyncSession, family_id: str | None) -> None:
        if family_id is None:
            return
        await repository.revoke_family(session, family_id=family_id, at=self.clock.now())
        await self.feed.record(session, kind="family", key=family_id)

    async def revoke_customer_tokens(self, session: AsyncSession, *, institution_id: str, customer_id: str) -> None:
        """Every token of one customer (after a completed reset, an unlock by the bank, a removal)."""
        await repository.revoke_customer_tokens(
            session, institution_id=institution_id, customer_id=customer_id, at=self.clock.now()
        )
        await self.feed.record(session, kind="customer", key=f"{institution_id}/{customer_id}")

    # Bearer tokens on resource APIs (contract section 5): the hot path

    async def authenticate_bearer(self, authorization: str | None) -> Principal:
        """Who the token acts for."""
        if not authorization:
            raise BearerMissing()
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token.startswith(ACCESS_PREFIX) or len(token) > _MAX_TOKEN_LENGTH:
            raise BearerInvalid()
        token_hash = self.hasher.digest(H_ACCESS, token)
        now = self.clock.timestamp()
        entry = self.cache.get_token(token_hash, now)
        if entry is None:
            entry = await self._load_access_token(token, token_hash, now)
        if self.cache.is_revoked(entry, entry.stored_hash):
            raise BearerInvalid(known=True)
        if entry.expires_at <= now:
            raise BearerExpired()
        return Principal(
            client_id=entry.client_id, institution_id=entry.institution_id, customer_id=entry.customer_id,
            scopes=entry.scopes, token_id=entry.token_id, trusted_origin=entry.trusted_origin,
        )

    async def _load_access_token(self, presented: str, token_hash: str, started: float) -> CachedToken:
        """From the database, under ``token_hash`` (the current key's) or an old key's; cached under
        ``token_hash``, the hash the next request computes."""
        async with self.db.reading() as session:
            found = await repository.token_by_hash(session, [token_hash, *self.hasher.digests(H_ACCESS, presented)[1:]])
        if found is None:
            raise BearerInvalid()
        token, client = found
        if token.kind != "access":
            raise BearerInvalid()
        if token.revoked_at is not None or client.revoked_at is not None:
            raise BearerInvalid(known=True)
        entry = CachedToken(
            token_id=token.id, client_id=token.client_id, institution_id=token.institution_id,
            customer_id=token.customer_id, family_id=token.family_id, scopes=scopes.parse(token.scope),
            issued_at=token.issued_at.timestamp(), expires_at=token.expires_at.timestamp(), cached_at=started,
            stored_hash=token.token_hash, trusted_origin=client.trusted_origin,
        )
        if entry.expires_at > started:
            self.cache.put_token(token_hash, entry)
        return entry

    # Client administration (the command line)

    async def create_client(
        self,
        session: AsyncSession,
        *,
        institution_id: str,
        scope: str,
        name: str | None = None,
        grant_types: str | None = None,
        shared_key: str | None = None,
        secret_key: str | None = None,
        actor: str = "cli",
    ) -> NewClient:
        """A new client; ``shared_key`` and ``secret_key`` are only given by the sandbox's seed."""
        if await institutions.get(session, institution_id) is None:
            raise InstitutionNotFound(f"no institution {institution_id}; create it first")
        allowed = scopes.parse(scope)
        if not allowed:
            raise InvalidClientSettings("a client needs at least one scope")
        unknown = allowed - scopes.KNOWN_SCOPES
        if unknown:
            raise InvalidClientSettings(
                f"unknown scope {' '.join(sorted(unknown))}; known: {scopes.render(scopes.KNOWN_SCOPES)}"
            )
        grants = scopes.parse(grant_types) if grant_types else scopes.KNOWN_GRANTS
        if not grants or not grants <= scopes.KNOWN_GRANTS:
            raise InvalidClientSettings(f"grant types are a subset of: {scopes.render(scopes.KNOWN_GRANTS)}")
        secret = secret_key or new_secret(SECRET_PREFIX)
        client = ApiClient(
            id=new_id(), institution_id=institution_id, name=(name or "partner application").strip(),
            shared_key=shared_key or SHARED_KEY_PREFIX + new_id(),
            secret_hash=self.hasher.digest(H_CLIENT_SECRET, secret),
            scopes=scopes.render(allowed), grant_types=scopes.render(grants), created_at=self.clock.now(),
        )
        await repository.add(session, client)
        await audit.record_event(
            session, clock=self.clock, event_type="client.created", outcome="success", actor=actor,
            institution_id=institution_id, client_id=client.id,
            details={"sharedKey": client.shared_key, "scopes": client.scopes, "grantTypes": client.grant_types},
        )
        return NewClient(client=client, secret_key=secret)

    async def rotate_client_secret(
        self, session: AsyncSession, *, shared_key: str, revoke_tokens: bool = False,
        grace: timedelta = timedelta(0), force: bool = False, actor: str = "cli",
    ) -> NewClient:
        """A new secret. With ``grace``, the one it replaces is still accepted for that long (one
        previous secret at a time). Without it, the old one is refused at once (a leaked secret)."""
        if not timedelta(0) <= grace <= MAX_ROTATION_GRACE:
            raise InvalidClientSettings(f"a grace period is at most {MAX_ROTATION_GRACE.days} days")
        if grace and revoke_tokens:
            raise InvalidClientSettings(
                "--revoke-tokens is for a leaked secret, which must stop working at once: drop --grace"
            )
        client = await self._client_for_admin(session, shared_key)
        now = self.clock.now()
        if grace and not force and client.previous_secret_expires_at is not None and (
            client.previous_secret_expires_at > now
        ):
            raise InvalidClientSettings(
                f"the secret key replaced before still works until {client.previous_secret_expires_at.isoformat()}; "
                "rotating again with a grace period would end it at once (add --force if that is meant)"
            )
        secret = new_secret(SECRET_PREFIX)
        if grace > timedelta(0):
            client.previous_secret_hash, client.previous_secret_expires_at = client.secret_hash, now + grace
        else:
            client.previous_secret_hash = client.previous_secret_expires_at = None
        client.secret_hash = self.hasher.digest(H_CLIENT_SECRET, secret)
        client.secret_rotated_at = now
        await session.flush()
        await self.feed.record(session, kind="client_updated", key=client.id)
        if revoke_tokens:
            await self._revoke_client_tokens(session, client)
        await audit.record_event(
            session, clock=self.clock, event_type="client.rotated", outcome="success", actor=actor,
            institution_id=client.institution_id, client_id=client.id,
            details={"sharedKey": client.shared_key, "tokensRevoked": revoke_tokens,
                     "graceSeconds": int(grace.total_seconds())},
        )
        return NewClient(client=client, secret_key=secret)

    async def revoke_client(self, session: AsyncSession, *, shared_key: str, actor: str = "cli") -> ApiClient:
        client = await self._client_for_admin(session, shared_key)
        client.revoked_at = self.clock.now()
        client.previous_secret_hash = client.previous_secret_expires_at = None
        await session.flush()
        await self._revoke_client_tokens(session, client)
        await audit.record_event(
            session, clock=self.clock, event_type="client.revoked", outcome="success", actor=actor,
            institution_id=client.institution_id, client_id=client.id, details={"sharedKey": client.shared_key},
        )
        return client

    async def set_trusted_origin(
        self, session: AsyncSession, *, shared_key: str, trusted: bool, actor: str = "cli"
    ) -> ApiClient:
        """Whether the client may name the end customer's address (``originating_ip``) for the audit
        trail. Tokens carry it from their issue: the change applies to tokens issued from now on."""
        client = await self._client_for_admin(session, shared_key)
        client.trusted_origin = trusted
        await session.flush()
        self.cache.clear()  # (this node's cached client; other nodes' within their client cache's life)
        await audit.record_event(
            session, clock=self.clock, event_type="client.updated", outcome="success", actor=actor,
            institution_id=client.institution_id, client_id=client.id,
            details={"sharedKey": client.shared_key, "trustedOrigin": trusted},
        )
        return client

    async def list_clients(self, session: AsyncSession, *, institution_id: str | None = None) -> Sequence[ApiClient]:
        return await repository.list_clients(session, institution_id=institution_id)

    async def _revoke_client_tokens(self, session: AsyncSession, client: ApiClient) -> None:
        await repository.revoke_client_tokens(session, client_id=client.id, at=self.clock.now())
        await self.feed.record(session, kind="client", key=client.id)

    async def _client_for_admin(self, session: AsyncSession, shared_key: str) -> ApiClient:
        client = await repository.client_by_shared_key(session, shared_key)
        if client is None:
            raise ClientNotFound(f"no client with shared key {shared_key}")
        if client.revoked_at is not None:
            raise ClientNotFound(f"client {shared_key} is revoked")
        return client


def _parse_basic(authorization: str | None) -> tuple[str, str]:
    """``Authorization: Basic base64(sharedKey:secretKey)`` (RFC 7617)."""
    if not authorization:
        raise InvalidClient()
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic" or not encoded or len(encoded) > 512:
        raise InvalidClient()
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidClient() from None
    shared_key, sep, secret = decoded.partition(":")
    if not sep or not shared_key or not secret:
        raise InvalidClient()
    # RFC 6749 section 2.3.1: both parts are form-urlencoded before encoding.
    shared_key, secret = unquote(shared_key.replace("+", " ")), unquote(secret.replace("+", " "))
    if not (storable(shared_key) and storable(secret)):
        raise InvalidClient()  # no stored key holds NUL: an unknown client, before the database
    return shared_key, secret


def _narrow(allowed: frozenset[str], requested: str | None) -> frozenset[str]:
    """A requested scope must be a subset of what is allowed; none requested means all of it."""
    if requested is None or not requested.strip():
        return allowed
    wanted = scopes.parse(requested)
    if not wanted <= allowed:
        raise InvalidScope()
    return wanted
