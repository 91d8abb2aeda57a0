from pwreset.errors import PwresetError


class CustomerNotFound(PwresetError):
    key = "customer.not_found"
    message = "no such customer in this institution"


class InvalidUserIdType(PwresetError):
    key = "request.invalid_query"
    message = "userIdType must be one of the documented values"
