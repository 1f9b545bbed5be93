"""Signed webhooks (Standard Webhooks): endpoints per user, deliveries written to an outbox
table in the transaction that changed the video, sent with retries by a dispatcher."""
