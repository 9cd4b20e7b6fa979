"""Notifications: an outbox in the database and senders that deliver it at least once."""
