from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ResetPasswordRequest(BaseModel):
    contactMethodId: str = Field(min_length=1, max_length=64)
    protocol: Literal["SMS", "VOICE", "EMAIL"] | None = Field(
        default=None, description="the method's own protocol when absent; EMAIL is a pwreset extension"
    )


class VerifyPasscodeRequest(BaseModel):
    passcode: str = Field(min_length=1, max_length=32)


class ResetTicket(BaseModel):
    resetTicket: str
    expiresIn: int


class SetPasswordRequest(BaseModel):
    resetTicket: str = Field(min_length=1, max_length=128)
    newPassword: str = Field(min_length=1, max_length=1024)
