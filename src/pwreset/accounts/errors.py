from __future__ import annotations

from pwreset.errors import PwresetError


class AccountNotFound(PwresetError):
    key = "account.not_found"
    message = "no such account for this user"


class BadFilter(PwresetError):
    key = "accounts.bad_filter"
    message = "unsupported $filter"


class UserParameters(PwresetError):
    key = "accounts.user_parameters"
    message = "give exactly one of hostUserId and loginId with an institution token, neither with a customer token"


class BadPaging(PwresetError):
    key = "accounts.bad_paging"
    message = "invalid $apply, $skipGroups or $topGroups"
