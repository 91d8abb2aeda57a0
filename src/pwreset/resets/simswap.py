"""Has the SIM behind a number been swapped lately? A port with two adapters (issue 14, item 4).

Fraudsters take over a victim's number with a SIM swap, then reset the password by SMS or voice
(FFIEC 2021). The GSMA CAMARA SIM Swap API asks the carrier: ``POST {base}/check`` with
``{"phoneNumber": "+E.164", "maxAge": <hours>}`` answers ``{"swapped": true|false}``, under an OAuth2
client-credentials token (``PWRESET_SIM_SWAP_URL``, ``..._TOKEN_URL``, ``..._CLIENT_ID``,
``..._CLIENT_SECRET``). Without a URL the null adapter gives no answer: an institution that turns the
check on without a carrier configured gets its failure mode, never a silent "not swapped". The audit
trail names the checker that answered.

Anything but a clear answer (a timeout, a refused token, an unknown number, 5xx) is
:class:`SimSwapUnavailable`; the reset service then fails closed or open by
``PWRESET_SIM_SWAP_FAILURE``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

import httpx
from prometheus_client import Counter

from pwreset.config import Settings

CHECKS = Counter("pwreset_sim_swap_checks_total", "SIM swap checks before phone passcodes, by result", ["result"])


class SimSwapUnavailable(Exception):
    """The checker gave no answer to trust."""


class SimSwapChecker(Protocol):
    name: str

    async def swapped(self, phone_number: str, *, max_age_hours: int) -> bool: ...

    async def close(self) -> None: ...


class NullSimSwap:
    """No carrier to ask. An institution that turned the check on gets no answer from it, so its
    ``PWRESET_SIM_SWAP_FAILURE`` decides (closed, the default: phone channels refused) rather than a
    silent "not swapped"; institutions with the check off never ask it."""

    name = "null"

    async def swapped(self, phone_number: str, *, max_age_hours: int) -> bool:
        raise SimSwapUnavailable("no SIM-swap checker is configured (PWRESET_SIM_SWAP_URL)")

    async def close(self) -> None:
        return None


class CamaraSimSwap:
    """The CAMARA SIM Swap API's ``/check``, with a cached client-credentials token."""

    name = "camara"

    def __init__(
        self, *, url: str, token_url: str, client_id: str, client_secret: str, timeout: float
    ) -> None:
        self.url = url.rstrip("/") + "/check"
        self.token_url = token_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.timeout = timeout
        self.client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self._token: str | None = None
        self._token_expires = 0.0
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> CamaraSimSwap:
        assert settings.sim_swap_url and settings.sim_swap_token_url and settings.sim_swap_client_id
        assert settings.sim_swap_client_secret is not None
        return cls(
            url=settings.sim_swap_url, token_url=settings.sim_swap_token_url, client_id=settings.sim_swap_client_id,
            client_secret=settings.sim_swap_client_secret.get_secret_value(), timeout=settings.sim_swap_timeout,
        )

    async def swapped(self, phone_number: str, *, max_age_hours: int) -> bool:
        try:
            return await asyncio.wait_for(self._check(phone_number, max_age_hours), timeout=self.timeout)
        except (TimeoutError, httpx.HTTPError) as error:
            raise SimSwapUnavailable(type(error).__name__) from None

    async def _check(self, phone_number: str, max_age_hours: int) -> bool:
        for fresh in (False, True):  # a token the carrier no longer takes is fetched again, once
            token = await self._bearer(fresh=fresh)
            response = await self.client.post(
                self.url, json={"phoneNumber": phone_number, "maxAge": max_age_hours},
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            )
            if response.status_code == 401 and not fresh:
                continue
            if response.status_code != 200:
                raise SimSwapUnavailable(f"the checker answered {response.status_code}")
            try:
                swapped = response.json()["swapped"]
            except (ValueError, KeyError, TypeError):
                raise SimSwapUnavailable("the checker's answer has no 'swapped'") from None
            if not isinstance(swapped, bool):
                raise SimSwapUnavailable("the checker's 'swapped' is not a boolean")
            return swapped
        raise SimSwapUnavailable("the checker refused a fresh token")

    async def _bearer(self, *, fresh: bool) -> str:
        async with self._lock:
            if fresh or self._token is None or time.monotonic() >= self._token_expires:
                response = await self.client.post(
                    self.token_url, data={"grant_type": "client_credentials"},
                    auth=(self.client_id, self.client_secret),
                )
                if response.status_code != 200:
                    raise SimSwapUnavailable(f"the token endpoint answered {response.status_code}")
                try:
                    body = response.json()
                    self._token = str(body["access_token"])
                    lifetime = float(body.get("expires_in", 300))
                except (ValueError, KeyError, TypeError):
                    raise SimSwapUnavailable("the token endpoint's answer has no access_token") from None
                self._token_expires = time.monotonic() + max(lifetime - 30, 1)
            return self._token

    async def close(self) -> None:
        await self.client.aclose()


def build_checker(settings: Settings) -> SimSwapChecker:
    if settings.sim_swap_url:
        return CamaraSimSwap.from_settings(settings)
    return NullSimSwap()
