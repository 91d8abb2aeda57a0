"""A small directory of customers in two institutions, loaded through the real importer."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from pwreset.customers.importer import Importer

PAT_PASSWORD = "an initial password"


def cid(name: str) -> str:
    """A customer id in the spec's form (32 lower-case hex digits), made from a short test name."""
    return hashlib.sha256(name.encode()).hexdigest()[:32]


C0, C1, C2, C3, C4, C5, C6, C7, C8, C9 = (cid(f"C{n}") for n in range(10))
X1 = cid("X1")


def customer(customer_id: str, login_id: str, *methods: dict, **fields) -> dict:
    return {"customerId": customer_id, "loginId": login_id, "firstName": "Pat", "lastName": "Doe",
            "contactMethods": list(methods), **fields}


def sms(method_id: str, number: str = "2025550143", **fields) -> dict:
    return {"id": method_id, "protocol": "SMS", "telephoneCountryCode": "1", "contactInfo": number, **fields}


def voice(method_id: str, number: str = "2025550143", **fields) -> dict:
    return {"id": method_id, "protocol": "VOICE", "telephoneCountryCode": "1", "contactInfo": number, **fields}


def email(method_id: str, address: str = "pat@example.com", **fields) -> dict:
    return {"id": method_id, "protocol": "EMAIL", "contactInfo": address, **fields}


DIRECTORY = {
    "07675": [
        customer(C1, "Pat.Doe", sms("101", enrolledDateTime="2022-03-31T00:00:00Z"), voice("102"), email("103"),
                 password=PAT_PASSWORD, hostUserId="HOST001", memberNumber="100200300"),
        customer(C2, "sam", sms("201", "2025550178"), sms("202", "2025550179", isActivated=False)),
        customer(C3, "unregistered", sms("301", "2025550180"), registered=False),
        customer(C4, "nodisclosure", sms("401", "2025550181"), acceptedDisclosure=False),
        customer(C5, "inactive", sms("501", "2025550182"), active=False),
        customer(C6, "twin", sms("601", "2025550143")),  # shares Pat's number
    ],
    "11111": [customer(X1, "other.pat", sms("901", "2025550190"), password="another password")],
}


@dataclass
class World:
    partner: object
    other_partner: object
    token: str
    other_token: str

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}", "correlationId": str(uuid.uuid4())}


async def load(services, institution_id: str, records: list[dict]):
    importer = Importer(db=services.db, hashing=services.hashing, clock=services.clock)
    return await importer.run(list(enumerate(records, 1)), institution_id=institution_id)


