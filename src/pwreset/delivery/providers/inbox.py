"""The sandbox inbox: where messages to a portal organisation's demo customers go instead of a provider.

Nothing leaves the service. The outbox row itself is the inbox: it is marked sent, and the portal
opens it to show the developer what the customer would have received (portal/apps.py, ``inbox``).
"""

from __future__ import annotations

from pwreset.delivery.providers.base import Accepted, Outgoing


class SandboxInbox:
    name = "sandbox-inbox"

    async def send(self, message: Outgoing) -> Accepted:
        return Accepted(provider_ref=f"inbox:{message.id}")

    async def close(self) -> None:
        return None


SANDBOX_INBOX = SandboxInbox()
