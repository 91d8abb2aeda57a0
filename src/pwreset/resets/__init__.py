"""Password resets: passcodes to a contact method, reset tickets, the new password."""
