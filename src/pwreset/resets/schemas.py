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


class SecondChannelRequired(BaseModel):
    """Two-channel assurance [ext]: the passcode was right; a second one, verified on another channel
    (a phone and email, or two different numbers), earns the reset ticket."""

    secondChannelRequired: Literal[True] = True
    verifiedContactMethodId: str | None = Field(description="the contact method whose passcode was verified")
    contactMethodIds: list[str] = Field(description="activated methods on another destination, for the second")
    expiresIn: int = Field(description="seconds the verified first channel waits for the second")


class SetPasswordRequest(BaseModel):
    resetTicket: str = Field(min_length=1, max_length=128)
    newPassword: str = Field(min_length=1, max_length=1024)
