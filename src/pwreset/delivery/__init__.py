"""Delivery of passcodes and notices: a transactional outbox and the senders behind it."""
