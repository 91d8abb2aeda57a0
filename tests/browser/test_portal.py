"""The developer portal in a real browser (issue 13): the whole path a new partner developer takes."""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.browser.conftest import (
    REPRESENTATIVE,
    Mailbox,
    assert_accessible,
    have_newman,
    link_in,
    text_of,
    unique_email,
)

pytestmark = pytest.mark.slow
PASSWORD = "harbour lantern quietly 42 orbits"
SMS_CUSTOMER, SMS_METHOD = "5a1d0e5d3c2b4a1f9e8d7c6b5a4f0001", "100000001"


def sign_up_and_verify(page: Any, base: str, box: Mailbox, *, name: str, email: str) -> None:
    page.goto(f"{base}/portal")
    assert_accessible(page)
    page.get_by_role("link", name="Create a developer account").click()
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    assert_accessible(page)
    page.get_by_role("button", name="Create account").click()
    page.get_by_role("heading", name="Check your email").wait_for()
    assert_accessible(page)
    welcome = box.wait_for(email, "Confirm your email")
    page.goto(link_in(text_of(welcome)))
    assert_accessible(page)
    page.get_by_role("button", name="Confirm my email address").click()
    page.get_by_text("Your email address is confirmed").wait_for()


def sign_in(page: Any, base: str, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/portal/sign-in")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Your sandbox").wait_for()


def create_app(page: Any, name: str = "Mobile banking app") -> tuple[str, str, str]:
    """Create an app from the dashboard; the shared key, secret key and sandbox institution id shown once."""
    page.get_by_role("link", name="Create an app").click()
    page.get_by_label("App name").fill(name)
    page.get_by_label("institution-users:read").check()
    page.get_by_label("institution-users:write").check()
    assert_accessible(page)
    page.get_by_role("button", name="Create app").click()
    page.get_by_role("heading", name="Your new key pair").wait_for()
    assert_accessible(page)
    shared = page.locator("#shared-key").inner_text()
    secret = page.locator("#secret-key").inner_text()
    institution = re.search(r"institutionId: (sbx-\w+)", page.content())
    assert institution is not None
    return shared, secret, institution.group(1)


def token(base: str, shared: str, secret: str, institution: str) -> httpx.Response:
    return httpx.post(f"{base}/oauth2/v1/token", auth=(shared, secret), data={"grant_type": "client_credentials"},
                      headers={"transactionId": str(uuid.uuid4()), "institutionId": institution})


def test_sign_up_to_a_reset_finished_with_the_passcode_from_the_sandbox_inbox(portal, mailbox, browse):
    box, _ = mailbox
    page = browse()
    email = unique_email("ana")
    sign_up_and_verify(page, portal, box, name="Ana Ortiz", email=email)
    assert_accessible(page)
    sign_in(page, portal, email)
    assert_accessible(page)
    assert page.get_by_role("cell", name=SMS_CUSTOMER).count() == 1
    shared, secret, institution = create_app(page)
    page.get_by_role("link", name="I have saved it: go to the app").click()
    assert_accessible(page)
    assert page.get_by_text("Never").count() == 1  # the pair has not been used yet
    assert secret not in page.content()  # shown once only

    # The partner's own client, outside the browser.
    issued = token(portal, shared, secret, institution)
    assert issued.status_code == 200, issued.text
    bearer = {"Authorization": f"Bearer {issued.json()['access_token']}", "correlationId": str(uuid.uuid4())}
    sent = httpx.put(f"{portal}/v1/customers/{SMS_CUSTOMER}:reset-password", headers=bearer,
                     json={"contactMethodId": SMS_METHOD})
    assert sent.status_code == 204, sent.text

    page.get_by_role("link", name="Sandbox inbox").click()
    deadline = time.monotonic() + 15
    while "reset code is" not in page.content():  # the delivery worker files it in the inbox
        assert time.monotonic() < deadline, "the passcode never reached the sandbox inbox"
        page.reload()
    assert_accessible(page)
    code = re.search(r"reset code is (\d+)", page.content())
    assert code is not None and "+12025550143" in page.content()

    verified = httpx.post(f"{portal}/v1/customers/{SMS_CUSTOMER}:verify-passcode",
                          headers={**bearer, "correlationId": str(uuid.uuid4())},
                          json={"contactMethodId": SMS_METHOD, "passcode": code.group(1)})
    assert verified.status_code == 200, verified.text
    changed = httpx.put(f"{portal}/v1/customers/{SMS_CUSTOMER}:set-password",
                        headers={**bearer, "correlationId": str(uuid.uuid4())},
                        json={"resetTicket": verified.json()["resetTicket"], "newPassword": "granite Meadow 7 parcels"})
    assert changed.status_code == 204, changed.text

    # The key pair now shows when it was last used.
    page.goto(f"{portal}/portal/dashboard")
    page.get_by_role("link", name="Mobile banking app").click()
    assert page.get_by_text("Never").count() == 0


def test_the_downloaded_postman_collection_runs_green_under_newman(portal, mailbox, browse, tmp_path):
    newman = have_newman()
    if newman is None:
        pytest.fail("newman is not installed (npm install -g newman; .ci/run does)")
    box, _ = mailbox
    page = browse(accept_downloads=True)
    email = unique_email("postman")
    sign_up_and_verify(page, portal, box, name="Pat Postman", email=email)
    sign_in(page, portal, email)
    shared, secret, _ = create_app(page, "Postman app")
    page.get_by_role("link", name="I have saved it: go to the app").click()
    with page.expect_download() as collection_download:
        page.get_by_role("link", name="Download the Postman collection").click()
    with page.expect_download() as environment_download:
        page.get_by_role("link", name="Download a Postman environment for this app").click()
    collection = tmp_path / "collection.json"
    environment = tmp_path / "environment.json"
    collection_download.value.save_as(collection)
    environment_download.value.save_as(environment)
    values = {v["key"]: v["value"] for v in json.loads(environment.read_text())["values"]}
    assert values["sharedKey"] == shared and values["secretKey"] == "" and values["baseUrl"] == portal
    run = subprocess.run(
        [newman, "run", str(collection), "-e", str(environment), "--env-var", f"secretKey={secret}",
         "--reporters", "cli", "--color", "off"], capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "succeeds in the sandbox" in run.stdout


def test_the_watchlist_tells_the_representative(portal, mailbox, browse):
    box, _ = mailbox
    page = browse()
    page.goto(f"{portal}/portal/apis/reset-password")
    assert_accessible(page)
    assert page.get_by_role("link", name="Sign in").count() >= 1  # signed out: asked to sign in
    assert page.get_by_role("button", name="Add to my watchlist").count() == 0
    email = unique_email("watch")
    sign_up_and_verify(page, portal, box, name="Wen Watcher", email=email)
    sign_in(page, portal, email)
    page.goto(f"{portal}/portal/apis/reset-password")
    page.get_by_role("button", name="Add to my watchlist").click()
    page.get_by_text("The institution's team has been told").wait_for()
    assert_accessible(page)
    told = text_of(box.wait_for(REPRESENTATIVE, "Developer interest in Reset Password v2.5"))
    assert "Wen Watcher" in told and email in told


def test_forgot_password_by_emailed_code_ends_other_sessions(portal, mailbox, browse):
    box, _ = mailbox
    first, second = browse(), browse()
    email = unique_email("forgot")
    sign_up_and_verify(first, portal, box, name="Fay Forgetful", email=email)
    sign_in(first, portal, email)
    second.goto(f"{portal}/portal/forgot")
    assert_accessible(second)
    second.get_by_label("Email address").fill(email)
    second.get_by_role("button", name="Email me a code").click()
    code = re.search(r"password is (\d{8})", text_of(box.wait_for(email, "developer portal code")))
    assert code is not None
    assert second.get_by_label("Email address").input_value() == email
    second.get_by_label("Code from the email").fill("00000000" if code.group(1) != "00000000" else "11111111")
    second.get_by_label("New password").fill("another river 88 stones")
    second.get_by_role("button", name="Change my password").click()
    error = second.get_by_text("The code is not right")
    error.wait_for()
    assert_accessible(second)  # the error sits next to its field, announced
    second.get_by_label("Code from the email").fill(code.group(1))
    second.get_by_label("New password").fill("another river 88 stones")
    second.get_by_role("button", name="Change my password").click()
    second.get_by_text("Your password is changed").wait_for()
    first.reload()
    first.get_by_role("heading", name="Sign in").wait_for()  # the first session ended with the change
    sign_in(second, portal, email, "another river 88 stones")


def test_keyboard_only_and_on_a_phone_revoking_the_last_key_asks_first(portal, mailbox, browse):
    box, _ = mailbox
    page = browse(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    email = unique_email("keys")
    sign_up_and_verify(page, portal, box, name="Kai Keyboard", email=email)
    page.goto(f"{portal}/portal/sign-in")
    page.keyboard.press("Tab")  # the skip link comes first
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.get_by_label("Email address").focus()
    page.keyboard.type(email)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Your sandbox").wait_for()
    assert_accessible(page)
    shared, secret, institution = create_app(page, "Phone app")
    page.get_by_role("link", name="I have saved it: go to the app").click()
    page.get_by_role("button", name=re.compile("^Revoke")).click()
    page.get_by_role("heading", name="Revoke the last key pair?").wait_for()
    assert_accessible(page)
    assert token(portal, shared, secret, institution).status_code == 200  # not revoked yet
    page.get_by_role("button", name="Revoke it").click()
    page.get_by_text("The key pair is revoked").wait_for()
    assert page.get_by_text("Revoked", exact=True).count() == 1
    assert token(portal, shared, secret, institution).status_code == 401
