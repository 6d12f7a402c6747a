"""Durable webhook delivery: SQLite outbox, senders with retry, HMAC signing."""
