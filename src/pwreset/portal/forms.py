"""The portal's forms (WTForms) and their CSRF protection.

WTForms reads and validates every form and puts each error next to its field. Its CSRF framework carries
the token: a hidden field in every form, checked before anything else (``kit/webforms.SignedCSRF``, bound to
the browser's CSRF cookie: ``__Host-`` outside the sandbox, replaced at sign-in and sign-out; decision 0011).
"""

from __future__ import annotations

import secrets

from wtforms import (
    BooleanField,
    EmailField,
    HiddenField,
    PasswordField,
    RadioField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length
from wtforms.widgets import CheckboxInput, ListWidget

from pwreset.kit.webforms import CSRFForm


class PortalForm(CSRFForm):
    """A portal form: WTForms' CSRF field, signed by :class:`pwreset.kit.webforms.SignedCSRF`."""


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


class PageLookForm(PortalForm):
    """The hosted reset page's look (staff): each value checked by ``web/branding.py``; '' removes it."""

    accent_color = StringField("Accent colour (buttons and links, #rrggbb)", [Length(max=7)])
    header_color = StringField("Header colour (behind white text, #rrggbb)", [Length(max=7)])
    sign_in_url = StringField("Sign-in address (the last screen's button)", [Length(max=500)])
    frame_ancestors = StringField("Sites that may frame the page (https origins, separated by spaces)",
                                  [Length(max=1000)])


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
