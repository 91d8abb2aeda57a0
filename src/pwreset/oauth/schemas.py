"""Wire shapes of the token service, for the OpenAPI document (contract sections 2 to 4)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class AccessTokenRequestV2(BaseModel):
    grant_type: str = Field(description="client_credentials | password | refresh_token")
    scopes: str | None = Field(
        default=None, description="a subset of the client's scopes, separated by commas, spaces or both"
    )
    scope: str | None = Field(default=None, description="RFC 6749 name for `scopes`")
    username: str | None = Field(default=None, description="password grant: the customer's login id")
    password: str | None = Field(default=None, description="password grant")
    refresh_token: str | None = Field(default=None, description="refresh_token grant")


class AccessTokenResponseV2(BaseModel):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - a token type, not a secret
    expires_in: str = Field(pattern=r"^\d+$", description="lifetime in seconds, as a string of digits")
    scope: str
    refresh_token: str | None = None
    refresh_token_expires_in: str | None = Field(default=None, pattern=r"^\d+$")


class RevokeAccessTokenRequestV2(BaseModel):
    token: str
    token_type_hint: str | None = None


class IntrospectionResponse(BaseModel):
    active: bool
    scope: str | None = None
    client_id: str | None = None
    exp: int | None = None
    iat: int | None = None
    token_type: str | None = None
    institution_id: str | None = None
    sub: str | None = None


