"""The portal's forms (WTForms) and their CSRF protection.

WTForms reads and validates every form and puts each error next to its field. Its CSRF framework carries
the token: a hidden field in every form, checked before anything else. The token scheme is WTForms'
documented extension point (``wtforms.csrf.core.CSRF``) rather than its ``SessionCSRF``, which compares
with ``!=`` and fails with a KeyError when the session lacks its secret: here the token is an
HMAC-SHA256, under a key derived from the service's secret key, of the browser's CSRF cookie (a random
value, ``__Host-`` outside the sandbox, replaced at sign-in and sign-out) and an expiry, compared in
constant time (decision 0011).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any

from wtforms import (
    BooleanField,
    EmailField,
    Form,
    HiddenField,
    PasswordField,
    RadioField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.csrf.core import CSRF
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

TOKEN_LIFETIME = 4 * 3600


class SignedCSRF(CSRF):  # type: ignore[misc]
    """``expires.hmac`` bound to the browser's CSRF cookie; ``csrf_context`` is ``(key, cookie)``."""

    def setup_form(self, form: Any) -> Any:
        self.key, self.binding = form.meta.csrf_context
        return super().setup_form(form)

    def _mac(self, expires: str) -> str:
        return hmac.new(self.key, f"portal-csrf\x00{self.binding}\x00{expires}".encode(), hashlib.sha256).hexdigest()

    def generate_csrf_token(self, csrf_token_field: Any) -> str:
        expires = str(int(time.time()) + TOKEN_LIFETIME)
        return f"{expires}.{self._mac(expires)}"

    def validate_csrf_token(self, form: Any, field: Any) -> None:
        expires, _, mac = str(field.data or "").partition(".")
        if not (self.binding and expires.isdigit() and len(expires) < 12
                and hmac.compare_digest(mac.encode(), self._mac(expires).encode())):
            raise ValidationError("This form has expired. Reload the page and try again.")
        if int(expires) < time.time():
            raise ValidationError("This form has expired. Reload the page and try again.")


class PortalForm(Form):  # type: ignore[misc]
    class Meta:
        csrf = True
        csrf_class = SignedCSRF
        csrf_field_name = "csrf_token"


def _once() -> str:
    return secrets.token_urlsafe(16)


class OnceForm(PortalForm):
    """A form that makes something (an app, a key pair, a request, an invitation): its ``once`` value is
    spent when it is sent, so a reload of the answer, or a second click, makes nothing twice."""

    once = HiddenField("once", [DataRequired(), Length(max=64)], default=_once)


class SignUpForm(PortalForm):
    name = StringField("Your name", [DataRequired("Enter your name"), Length(max=200)])
    email = EmailField("Email address", [DataRequired("Enter your email address"), Length(max=320)])
    password = PasswordField("Password", [DataRequired("Choose a password"), Length(max=256)])


class SignInForm(PortalForm):
    email = EmailField("Email address", [DataRequired("Enter your email address"), Length(max=320)])
    password = PasswordField("Password", [DataRequired("Enter your password"), Length(max=256)])
    next = HiddenField("next", [Length(max=200)])


class ForgotForm(PortalForm):
    email = EmailField("Email address", [DataRequired("Enter your email address"), Length(max=320)])


class ResetForm(PortalForm):
    email = EmailField("Email address", [DataRequired("Enter your email address"), Length(max=320)])
    code = StringField("Code from the email", [DataRequired("Enter the code from the email"), Length(max=16)])
    password = PasswordField("New password", [DataRequired("Choose a password"), Length(max=256)])


class VerifyForm(PortalForm):
    token = StringField("token", [DataRequired(), Length(max=100)])


class AppForm(OnceForm):
    name = StringField("App name", [DataRequired("Give the app a name"), Length(max=100)])
    scopes = SelectMultipleField(
        "APIs it may call", choices=[], option_widget=CheckboxInput(), widget=ListWidget(prefix_label=False),
        validate_choice=True,
    )


class ActionForm(OnceForm):
    """A button: the CSRF token and a single-use value (sign out, add a key, rotate, watch)."""


class RevokeForm(PortalForm):
    confirmed = BooleanField("I understand this app will have no working key")


class CodeForm(PortalForm):
    """A sign-in's second step."""

    challenge = HiddenField("challenge", [DataRequired(), Length(max=100)])
    next = HiddenField("next", [Length(max=200)])
    code = StringField("Code from your authenticator app, or a recovery code",
                       [DataRequired("Enter the code"), Length(max=20)])


class PasswordForm(PortalForm):
    password = PasswordField("Your password", [DataRequired("Enter your password"), Length(max=256)])


class TotpForm(PortalForm):
    code = StringField("6-digit code from the app", [DataRequired("Enter the code your app shows"), Length(max=10)])


class AccessForm(OnceForm):
    purpose = TextAreaField("What will the app do in production?",
                            [DataRequired("Tell us what the app will do"), Length(min=10, max=1000)])


class DecisionForm(PortalForm):
    note = TextAreaField("Note to the developer (optional)", [Length(max=1000)])


class InviteForm(OnceForm):
    email = EmailField("Teammate's email address", [DataRequired("Enter an email address"), Length(max=320)])
    role = RadioField("Role", choices=[SelectChoice("admin", "Admin: everything, including teammates"),
                                       SelectChoice("developer", "Developer: apps and keys"),
                                       SelectChoice("viewer", "Viewer: read only")],
                      default="developer", validators=[DataRequired("Choose a role")])


class SwitchForm(PortalForm):
    organisation = HiddenField("organisation", [DataRequired(), Length(max=32)])
