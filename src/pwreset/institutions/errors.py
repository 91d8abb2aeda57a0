from pwreset.errors import PwresetError

# Raised by the command line only; no wire family maps them.


class InstitutionExists(PwresetError):
    message = "an institution with that id already exists"


class InstitutionNotFound(PwresetError):
    message = "no such institution"


class InvalidInstitutionId(PwresetError):
    message = "an institution id is 1 to 64 letters, digits, '-' or '_'"
