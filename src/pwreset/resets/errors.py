"""Reset-flow refusals. Wire codes (UXU_2xxxx, contract 6.2 to 6.4) live in ``pwreset/errors.py``."""

from __future__ import annotations

from pwreset.errors import PwresetError


class UnknownContactMethod(PwresetError):
    key = "reset.unknown_contact_method"
    message = "contact method id not found for this customer"


class ProtocolMismatch(PwresetError):
    key = "reset.protocol_mismatch"
    message = "protocol does not match the contact method"


class MethodNotActivated(PwresetError):
    key = "reset.method_not_activated"
    message = "contact method is not activated"


class NotRegistered(PwresetError):
    key = "reset.not_registered"
    message = "customer is not registered for online banking"


class DisclosureNotAccepted(PwresetError):
    key = "reset.disclosure_not_accepted"
    message = "customer has not accepted the disclosures"


class CoolingOff(PwresetError):
    key = "reset.cooling_off"
    message = "too many wrong passcodes; password reset is suspended for this customer for a while"


class CustomerInactive(PwresetError):
    key = "reset.customer_inactive"
    message = "customer is not active"


class PasscodeWrong(PwresetError):
    key = "passcode.wrong"
    message = "passcode is wrong"


class PasscodeExpired(PwresetError):
    key = "passcode.expired"
    message = "passcode has expired; request a new one"


class PasscodeUsed(PwresetError):
    key = "passcode.used"
    message = "passcode was already used"


class PasscodeSuperseded(PwresetError):
    key = "passcode.superseded"
    message = "a newer passcode was sent; use the latest one"


class PasscodeExhausted(PwresetError):
    key = "passcode.exhausted"
    message = "too many wrong tries; request a new passcode"


class NoPasscode(PwresetError):
    key = "passcode.none"
    message = "no passcode was requested for this customer"


class InvalidTicket(PwresetError):
    key = "ticket.invalid"
    message = "reset ticket is unknown, expired or already used"


class PasswordRefused(PwresetError):
    key = "password.policy"
    message = "new password does not meet the password policy"

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(extra={"reasons": reasons})


class DestinationChanged(PwresetError):
    key = "reset.destination_changed"
    message = "this contact method changed recently and cannot receive a passcode yet; offer another method"


class SimSwapped(PwresetError):
    key = "reset.sim_swapped"
    message = "the SIM behind this number was swapped recently; offer an email method instead"


class SimSwapCheckUnavailable(PwresetError):
    key = "reset.sim_swap_unavailable"
    message = "the SIM swap check is unavailable; offer an email method, or try again later"


class SecondChannelUnavailable(PwresetError):
    key = "reset.second_channel_unavailable"
    message = "this institution needs passcodes on two different channels and the customer has only one"


class SameChannel(PwresetError):
    key = "reset.same_channel"
    message = "a passcode to this destination was already verified; the second must go to another channel"
