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


def create_app(
    page: Any, name: str = "Mobile banking app", scopes: tuple[str, ...] = ("institution-users:read",
                                                                             "institution-users:write"),
) -> tuple[str, str, str]:
    """Create an app from the dashboard; the shared key, secret key and sandbox institution id shown once."""
    page.get_by_role("link", name="Create an app").click()
    page.get_by_label("App name").fill(name)
    for scope in scopes:
        page.get_by_label(scope, exact=True).check()
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

    # The partner's own client, outside the browser: the keys work.
    issued = token(portal, shared, secret, institution)
    assert issued.status_code == 200, issued.text

    # The test drive: each call from the portal, with a token the browser never sees.
    page.goto(f"{portal}/portal/apis/reset-password")
    try_it(page, "reset-password-put", {"contactMethodId": SMS_METHOD})
    assert page.get_by_role("heading", name="Response: 204").count() == 1
    assert_accessible(page)
    page.get_by_role("link", name="sandbox inbox", exact=True).click()
    deadline = time.monotonic() + 15
    while "reset code is" not in page.content():  # the delivery worker files it in the inbox
        assert time.monotonic() < deadline, "the passcode never reached the sandbox inbox"
        page.reload()
    assert_accessible(page)
    code = re.search(r"reset code is (\d+)", page.content())
    assert code is not None and "+12025550143" in page.content()

    page.goto(f"{portal}/portal/apis/reset-password")
    try_it(page, "verify-passcode-post", {"contactMethodId": SMS_METHOD, "passcode": code.group(1)})
    assert page.get_by_role("heading", name="Response: 200").count() == 1
    ticket = re.search(r'&#34;resetTicket&#34;: &#34;([^&]+)&#34;|"resetTicket": "([^"]+)"', page.content())
    assert ticket is not None
    page.goto(f"{portal}/portal/apis/reset-password")
    try_it(page, "set-password-put", {"resetTicket": ticket.group(1) or ticket.group(2),
                                      "newPassword": "granite Meadow 7 parcels"})
    assert page.get_by_role("heading", name="Response: 204").count() == 1

    # The key pair now shows when it was last used.
    page.goto(f"{portal}/portal/dashboard")
    page.get_by_role("link", name="Mobile banking app").click()
    assert page.get_by_text("Never").count() == 0


def try_it(page: Any, anchor: str, body: dict[str, str]) -> None:
    """Open an operation's test drive, fill the body, send it to the sandbox; wait for the answer."""
    section = page.locator(f"#{anchor}")
    section.get_by_text("Try it in your sandbox").click()
    section.get_by_label("Request body (JSON)").fill(json.dumps(body))
    section.get_by_role("button", name=re.compile("^Send to my sandbox")).click()
    page.get_by_role("heading", name=re.compile("^Response: ")).wait_for()


def test_the_downloaded_postman_collection_runs_green_under_newman(portal, mailbox, browse, tmp_path):
    newman = have_newman()
    box, _ = mailbox
    page = browse(accept_downloads=True)
    email = unique_email("postman")
    sign_up_and_verify(page, portal, box, name="Pat Postman", email=email)
    sign_in(page, portal, email)
    shared, secret, _ = create_app(page, "Postman app", ("institution-users:read", "institution-users:write",
                                                        "accounts:read"))
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
    assert values["passcode"] == "" and len(values["accountId"]) == 32  # the demo account's real id
    run = subprocess.run(
        [newman, "run", str(collection), "-e", str(environment), "--env-var", f"secretKey={secret}",
         "--reporters", "cli", "--color", "off"], capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "succeeds in the sandbox" in run.stdout
    assert "/v1/accounts?hostUserId=HOST-0001 [200 OK" in run.stdout  # the Accounts calls reach a customer
    # verify-passcode waits for a passcode from the inbox (and set-password for its ticket): not sent, so a
    # run spends no wrong guess on the demo customer.
    assert ":verify-passcode" not in run.stdout and ":set-password" not in run.stdout


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
    # An app, from the keyboard alone: Enter on links and buttons, Tab between fields, Space on checkboxes.
    page.get_by_role("link", name="Create an app").focus()
    page.keyboard.press("Enter")
    page.get_by_label("App name").wait_for()
    page.get_by_label("App name").focus()
    page.keyboard.type("Phone app")
    for scope in ("accounts:read", "accounts:read_unmasked", "institution-users:read", "institution-users:write"):
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.value") == scope
        if scope.startswith("institution-users"):
            page.keyboard.press("Space")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Create app"
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Your new key pair").wait_for()
    shared = page.locator("#shared-key").inner_text()
    secret = page.locator("#secret-key").inner_text()
    found = re.search(r"institutionId: (sbx-\w+)", page.content())
    assert found is not None
    institution = found.group(1)
    page.get_by_role("link", name="I have saved it: go to the app").focus()
    page.keyboard.press("Enter")
    page.get_by_role("button", name=re.compile("^Revoke")).focus()
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Revoke the last key pair?").wait_for()
    assert_accessible(page)
    assert token(portal, shared, secret, institution).status_code == 200  # not revoked yet
    page.get_by_role("button", name="Revoke it").focus()
    page.keyboard.press("Enter")
    page.get_by_text("The key pair is revoked").wait_for()
    assert page.get_by_text("Revoked", exact=True).count() == 1
    assert token(portal, shared, secret, institution).status_code == 401


def test_production_access_from_request_to_staff_approval_to_keys_that_work(served, mailbox, browse):
    import pyotp

    box, _ = mailbox
    portal = served.base
    developer, staff = browse(), browse()
    email, staff_email = unique_email("prod"), unique_email("staff")
    sign_up_and_verify(developer, portal, box, name="Priya Prod", email=email)
    sign_in(developer, portal, email)
    create_app(developer, "Branch app")
    developer.get_by_role("link", name="I have saved it: go to the app").click()
    developer.get_by_role("link", name="Turn it on").click()
    secret = turn_on_two_factor(developer)
    developer.goto(f"{portal}/portal/dashboard")
    developer.get_by_role("link", name="Branch app").click()
    developer.get_by_label("What will the app do in production?").fill("Password resets in our branch tablets")
    developer.get_by_role("button", name="Request production access").click()
    developer.get_by_text("Your request for production access is with the institution's team").wait_for()
    assert_accessible(developer)
    assert "Branch app" in text_of(box.wait_for(REPRESENTATIVE, "Production access requested"))

    sign_up_and_verify(staff, portal, box, name="Sam Staff", email=staff_email)
    made = served.command("portal", "staff", staff_email)
    assert made.returncode == 0, made.stderr
    sign_in(staff, portal, staff_email)
    staff.goto(f"{portal}/portal/account/two-factor")
    turn_on_two_factor(staff)
    staff.goto(f"{portal}/portal/staff")
    assert_accessible(staff)
    staff.get_by_role("button", name="Approve Branch app").click()
    staff.get_by_text("The decision is recorded").wait_for()
    assert_accessible(staff)
    decided = text_of(box.wait_for(email, "Production access for Branch app: approved"))
    assert "production twin" in decided

    # The developer signs in again with the second factor, and makes the production keys.
    developer.context.clear_cookies()
    developer.goto(f"{portal}/portal/sign-in")
    developer.get_by_label("Email address").fill(email)
    developer.get_by_label("Password").fill(PASSWORD)
    developer.get_by_role("button", name="Sign in").click()
    developer.get_by_role("heading", name="Enter your code").wait_for()
    assert_accessible(developer)
    step = int(time.time()) // 30 + 1  # the next step: the one that turned two-factor on is spent
    developer.get_by_label(re.compile("^Code from your authenticator app")).fill(pyotp.TOTP(secret).at(step * 30))
    developer.get_by_role("button", name="Sign in").click()
    developer.get_by_role("heading", name="Your sandbox").wait_for()
    developer.get_by_role("link", name="Branch app (production)").click()
    developer.get_by_role("button", name="Add a key pair").click()
    developer.get_by_role("heading", name="Your new key pair").wait_for()
    shared = developer.locator("#shared-key").inner_text()
    secret_key = developer.locator("#secret-key").inner_text()
    assert token(portal, shared, secret_key, "07675").status_code == 200  # bound to the real institution


def turn_on_two_factor(page: Any) -> str:
    """Set up TOTP from the page's setup key, as an authenticator app would; returns the key."""
    import pyotp

    page.get_by_role("heading", name="Two-factor authentication").wait_for()
    assert_accessible(page)
    page.get_by_label("Your password").fill(PASSWORD)  # the password again, before a secret is shown
    page.get_by_role("button", name="Set up two-factor authentication").click()
    secret = page.locator("#totp-secret").inner_text()
    assert_accessible(page)
    page.get_by_label("6-digit code from the app").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on two-factor authentication").click()
    page.get_by_role("heading", name="Two-factor authentication is on").wait_for()
    assert_accessible(page)
    assert page.locator("#recovery-codes li").count() == 10
    return secret
