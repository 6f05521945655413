"""The service: contract, settings, credentials, idempotency, audit log and the shared flow."""
