from pwreset.errors import PwresetError


class CustomerNotFound(PwresetError):
    key = "customer.not_found"
    message = "no such customer in this institution"


class InvalidUserIdType(PwresetError):
    key = "request.invalid_query"
    message = "userIdType must be one of the documented values"


class NoEntitledCustomer(PwresetError):
    """``:contact-info``'s own not-found (Candescent's ``UXU_88888``)."""

    key = "contact.customer_not_found"
    message = "No entitled customers found for the specified id"
