"""The reset page's forms (WTForms), each with the CSRF field of ``kit/webforms.SignedCSRF``.

Validation messages are the catalogue's English (``N_``): the templates translate them when they show them.
"""

from __future__ import annotations

from wtforms import PasswordField, RadioField, StringField
from wtforms.validators import DataRequired, Length

from pwreset.kit.webforms import CSRFForm
from pwreset.web.i18n import N_

TOO_LONG = N_("That is too long.")
#: ``kit.webforms.EXPIRED``, marked here for the catalogue (a test checks they are the same text).
CSRF_EXPIRED = N_("This form has expired. Reload the page and try again.")


class StartForm(CSRFForm):
    login = StringField("login", [DataRequired(N_("Enter your login ID.")), Length(max=100, message=TOO_LONG)])


class ChooseForm(CSRFForm):
    destination = RadioField("destination", choices=[], validate_choice=True,
                             validators=[DataRequired(N_("Choose where to send your code."))])


class CodeForm(CSRFForm):
    code = StringField("code", [DataRequired(N_("Enter the code we sent you.")), Length(max=16, message=TOO_LONG)])


class ActionForm(CSRFForm):
    """A button: the CSRF token alone (send a new code)."""


class PasswordForm(CSRFForm):
    password = PasswordField("password", [DataRequired(N_("Enter a new password.")),
                                          Length(max=256, message=TOO_LONG)])
