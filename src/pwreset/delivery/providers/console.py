"""The console adapter, for the sandbox and development: prints each message, keeps the latest.

Outside the sandbox the printed line withholds the text: a passcode must not reach a log.
"""

from __future__ import annotations

import sys
from collections import deque
from typing import TextIO

from pwreset.customers.contact import mask
from pwreset.delivery.providers.base import Accepted, Outgoing


class ConsoleProvider:
    name = "console"

    def __init__(self, *, reveal: bool, stream: TextIO | None = None, keep: int = 200) -> None:
        self.reveal = reveal
        self.stream = stream
        self.sent: deque[Outgoing] = deque(maxlen=keep)

    async def send(self, message: Outgoing) -> Accepted:
        self.sent.append(message)
        out = self.stream or sys.stdout
        text = message.text if self.reveal else f"({message.kind} message withheld: console delivery)"
        print(f"[console {message.channel} to {mask(message.destination)}] {text}", file=out, flush=True)
        return Accepted(f"console-{message.id}")

    async def close(self) -> None:
        return None
