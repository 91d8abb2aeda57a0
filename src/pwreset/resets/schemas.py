from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ResetPasswordBody(BaseModel):
    contactMethodId: str = Field(min_length=1, max_length=64)
    protocol: Literal["SMS", "VOICE", "EMAIL"] | None = None


class VerifyPasscodeBody(BaseModel):
    passcode: str = Field(min_length=1, max_length=32)


class TicketRead(BaseModel):
    resetTicket: str
    expiresIn: int


class SetPasswordBody(BaseModel):
    resetTicket: str = Field(min_length=1, max_length=128)
    newPassword: str = Field(min_length=1, max_length=1024)
