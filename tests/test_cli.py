"""The command line, run as an operator runs it: a subprocess with PWRESET_* variables."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import httpx
import pytest

from tests.conftest import TEST_SECRET_KEY
from tests.directory_support import C1
from tests.servers import pwreset_server


@pytest.fixture
def cli(database_url, tmp_path):
    def run(*args: str, env: dict[str, str] | None = None, ok: bool = True) -> subprocess.CompletedProcess[str]:
        base_env = {
            "PWRESET_DATABASE_URL": database_url,
            "PWRESET_SECRET_KEY": TEST_SECRET_KEY,
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
        }
        result = subprocess.run(
            [sys.executable, "-m", "pwreset", *args], capture_output=True, text=True, timeout=60,
            env={**base_env, **(env or {})}, cwd=tmp_path, check=False,
        )
        assert "Traceback" not in result.stderr, result.stderr
        if ok:
            assert result.returncode == 0, result.stderr
        return result

    return run


def test_institutions_and_clients_lifecycle(cli):
    assert "created" in cli("institutions", "create", "07675", "--name", "First Credit Union").stdout
    listed = json.loads(cli("institutions", "list", "--json").stdout)
    assert [i["institutionId"] for i in listed] == ["07675"]

    created = json.loads(
        cli("clients", "create", "--institution", "07675", "--scopes", "institution-users:read", "--json").stdout
    )
    assert set(created) == {"sharedKey", "secretKey", "institutionId", "scopes"}
    assert created["institutionId"] == "07675" and created["scopes"] == "institution-users:read"
    assert created["secretKey"].startswith("pwr_cs_") and len(created["secretKey"]) >= 7 + 43

    clients = json.loads(cli("clients", "list", "--json").stdout)
    assert clients[0]["sharedKey"] == created["sharedKey"] and not clients[0]["revoked"]
    assert created["secretKey"] not in cli("clients", "list").stdout

    rotated = json.loads(cli("clients", "rotate", created["sharedKey"], "--json").stdout)
    assert rotated["sharedKey"] == created["sharedKey"] and rotated["secretKey"] != created["secretKey"]

    assert "revoked" in cli("clients", "revoke", created["sharedKey"]).stdout
    assert json.loads(cli("clients", "list", "--json").stdout)[0]["revoked"] is True


def test_human_output_shows_the_secret_once_and_says_so(cli):
    cli("institutions", "create", "07675", "--name", "First")
    result = cli("clients", "create", "--institution", "07675", "--scopes", "institution-users:read")
    assert "secret key:  pwr_cs_" in result.stdout
    assert "shown once" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["institutions", "create", "bad id!", "--name", "X"], "institution id"),
        (["clients", "create", "--institution", "nope", "--scopes", "institution-users:read"], "no institution"),
        (["clients", "create", "--institution", "07675", "--scopes", "bogus:scope"], "unknown scope"),
        (["clients", "create", "--institution", "07675", "--scopes", ""], "at least one scope"),
        (["clients", "create", "--institution", "07675", "--scopes", "accounts:read", "--grant-types", "implicit"],
         "grant types"),
        (["clients", "rotate", "pwr_ck_missing"], "no client"),
        (["clients", "revoke", "pwr_ck_missing"], "no client"),
    ],
)
def test_bad_input_gets_one_clear_line_and_a_non_zero_exit(cli, args, message):
    cli("institutions", "create", "07675", "--name", "First")
    result = cli(*args, ok=False)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr


def test_duplicate_institution_is_refused(cli):
    cli("institutions", "create", "07675", "--name", "First")
    result = cli("institutions", "create", "07675", "--name", "Again", ok=False)
    assert result.returncode == 1 and "already exists" in result.stderr


@pytest.mark.parametrize("key", [None, "changeme", "short", "x" * 40, "0123456789" * 4])
def test_missing_or_placeholder_secret_key_is_refused(cli, key):
    env = {"PWRESET_SECRET_KEY": key} if key is not None else {"PWRESET_SECRET_KEY": ""}
    result = cli("clients", "list", env=env, ok=False)
    assert result.returncode == 1 and "PWRESET_SECRET_KEY" in result.stderr


def test_an_unmigrated_database_is_named_not_dumped(cli, tmp_path):
    result = cli("institutions", "list", env={"PWRESET_DATABASE_URL": f"sqlite:///{tmp_path}/empty.db"}, ok=False)
    assert "pwreset db upgrade" in result.stderr


def test_an_unsupported_database_url_is_one_line(cli):
    result = cli("institutions", "list", env={"PWRESET_DATABASE_URL": "mysql://x"}, ok=False)
    assert result.returncode == 1 and "PWRESET_DATABASE_URL" in result.stderr


def test_db_upgrade_migrates_a_new_database(cli, tmp_path):
    url = f"sqlite:///{tmp_path}/fresh.db"
    assert "up to date" in cli("db", "upgrade", env={"PWRESET_DATABASE_URL": url}).stdout
    assert cli("institutions", "list", env={"PWRESET_DATABASE_URL": url}).stdout == ""


def test_serve_answers_and_refuses_to_start_without_a_key(cli, database_url, tmp_path):
    refused = cli("serve", env={"PWRESET_SECRET_KEY": ""}, ok=False)
    assert refused.returncode == 1 and "PWRESET_SECRET_KEY" in refused.stderr
    cli("institutions", "create", "07675", "--name", "First")
    created = json.loads(
        cli("clients", "create", "--institution", "07675", "--scopes", "institution-users:read", "--json").stdout
    )
    env = {"PWRESET_DATABASE_URL": database_url, "PWRESET_SECRET_KEY": TEST_SECRET_KEY}
    with pwreset_server(env, tmp_path / "serve.log") as base:
        response = httpx.post(
            f"{base}/oauth2/v1/token", auth=(created["sharedKey"], created["secretKey"]),
            headers={"transactionId": str(uuid.uuid4()), "institutionId": "07675"},
            data={"grant_type": "client_credentials"},
        )
        assert response.status_code == 200
    log = (tmp_path / "serve.log").read_text()
    assert created["secretKey"] not in log and response.json()["access_token"] not in log


def test_institution_settings(cli):
    cli("institutions", "create", "07675", "--name", "First")
    assert "updated" in cli("institutions", "set", "07675", "--min-password-length", "12", "--mask-contact-info").stdout
    refused = cli("institutions", "set", "07675", "--min-password-length", "4", ok=False)
    assert refused.returncode == 1 and "between 8 and 64" in refused.stderr
    missing = cli("institutions", "set", "99999", "--name", "x", ok=False)
    assert missing.returncode == 1 and "no institution" in missing.stderr


def test_outbox_and_templates_commands(cli, tmp_path):
    cli("institutions", "create", "07675", "--name", "First Credit Union")
    short = tmp_path / "sms.txt"
    short.write_text("{{ institution }}: code {{ code }}")
    assert "set for institution 07675" in cli(
        "templates", "set", "--institution", "07675", "--kind", "passcode", "--channel", "sms", "--language", "en",
        "--body", str(short),
    ).stdout
    assert cli("templates", "list", "--institution", "07675").stdout.startswith("passcode         SMS   en")
    long = tmp_path / "long.txt"
    long.write_text("{{ institution }}: " + "your code " * 20 + "{{ code }}")
    refused = cli("templates", "set", "--institution", "07675", "--kind", "passcode", "--channel", "SMS",
                  "--language", "en", "--body", str(long), ok=False)
    assert refused.returncode == 1 and "more than one segment" in refused.stderr
    assert "shipped text" in cli("templates", "delete", "--institution", "07675", "--kind", "passcode",
                                 "--channel", "SMS", "--language", "en").stdout
    assert cli("outbox", "list", "--json").stdout.strip() == "[]"
    for args, problem in ((("outbox", "retry", "nope"), "no message nope"),
                          (("outbox", "purge", "--older-than", "soon"), "use a number and a unit"),
                          (("outbox", "list", "--status", "lost"), "status must be one of")):
        result = cli(*args, ok=False)
        assert result.returncode == 1 and problem in result.stderr, result.stderr
    assert cli("outbox", "purge", "--older-than", "30d").stdout.strip() == "deleted 0 messages"


def test_the_worker_refuses_a_provider_without_its_settings(cli):
    result = cli("worker", env={"PWRESET_SMS_PROVIDER": "twilio"}, ok=False)
    assert result.returncode == 1
    assert "PWRESET_TWILIO_ACCOUNT_SID, PWRESET_TWILIO_AUTH_TOKEN, PWRESET_TWILIO_FROM_NUMBER" in result.stderr


def test_customers_export_and_reimport(cli, tmp_path):
    cli("institutions", "create", "07675", "--name", "First Credit Union")
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({
        "customerId": C1, "loginId": "pat", "password": "an initial password",
        "contactMethods": [{"id": "1", "protocol": "EMAIL", "contactInfo": "pat@example.com"}],
        "accounts": [{"id": "a1", "accountNumber": "000123456789", "type": {"value": "CHECKING"},
                      "currentBalance": {"currencyCode": "USD", "amount": "10.50"}}],
    }) + "\n")
    cli("customers", "import", str(source), "--institution", "07675")
    exported = tmp_path / "out.jsonl"
    result = cli("customers", "export", "--institution", "07675", "-o", str(exported))
    assert "1 customers exported" in result.stderr
    record = json.loads(exported.read_text())
    assert record["accounts"][0]["currentBalance"]["amount"] == "10.5" and "passwordHash" not in record
    assert "1 unchanged" in cli("customers", "import", str(exported), "--institution", "07675").stdout
    with_secrets = json.loads(cli("customers", "export", "--institution", "07675", "--with-secrets").stdout)
    assert with_secrets["passwordHash"].startswith("$argon2id$")
    missing = cli("customers", "export", "--institution", "99999", ok=False)
    assert missing.returncode == 1 and "no institution 99999" in missing.stderr


async def test_production_processes_refuse_a_sandbox_database(cli, services):
    """serve and worker stop with one line on a database the sandbox marked (issue 12, item 1)."""
    from pwreset.kit.clock import Clock
    from pwreset.ops.deployment import claim

    await claim(services.db, sandbox=True, clock=Clock())
    for command in (["serve", "--port", "1"], ["worker"]):
        result = cli(*command, env={"PWRESET_SANDBOX": "true"}, ok=False)
        assert result.returncode == 1
        assert "belongs to a sandbox" in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("access_log", ["true", "false"])
def test_a_served_request_logs_no_path_and_no_address(database_url, tmp_path, access_log):
    """Started as `uvicorn --factory` (which logs access by default) or `pwreset serve`: the only access
    line is pwreset's own, with the route template (issue 12, item 4)."""
    from tests.servers import server

    env = {"PWRESET_DATABASE_URL": database_url, "PWRESET_SECRET_KEY": TEST_SECRET_KEY,
           "PWRESET_ACCESS_LOG": access_log}
    for args in (["uvicorn", "pwreset.app:create_app_from_env", "--factory"], ["pwreset", "serve"]):
        log = tmp_path / f"{args[0]}-{access_log}.log"
        with server(args, env, log) as base:
            response = httpx.get(f"{base}/v1/customers/pat.doe.secret-login?userIdType=LOGIN_ID",
                                 headers={"correlationId": str(uuid.uuid4())})
            assert response.status_code == 401
        text = log.read_text()
        assert "pat.doe.secret-login" not in text and ' - "GET' not in text, text  # (uvicorn's access format)
        lines = [line for line in text.splitlines() if "/v1/customers/{customerId}" in line]
        assert len(lines) == (1 if access_log == "true" else 0), text


def test_keys_generate_prints_a_key_the_service_accepts(cli):
    key = cli("keys", "generate").stdout.strip()
    assert len(key) == 64 and key != cli("keys", "generate").stdout.strip()
    assert cli("institutions", "list", env={"PWRESET_SECRET_KEY": key}).returncode == 0


def test_clients_rotate_with_grace(cli):
    cli("institutions", "create", "07675", "--name", "First")
    created = json.loads(
        cli("clients", "create", "--institution", "07675", "--scopes", "institution-users:read", "--json").stdout
    )
    rotated = json.loads(cli("clients", "rotate", created["sharedKey"], "--grace", "24h", "--json").stdout)
    assert rotated["secretKey"] != created["secretKey"] and "previousSecretKeyValidUntil" in rotated
    for bad in ("forever", "99999999999d", "²h"):
        refused = cli("clients", "rotate", created["sharedKey"], "--grace", bad, ok=False)
        assert refused.returncode == 1 and "--grace" in refused.stderr  # one line, no traceback
    assert "refused from now on" in cli("clients", "rotate", created["sharedKey"]).stdout
