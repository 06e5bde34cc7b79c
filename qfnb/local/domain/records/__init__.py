"""What the platform keeps of its calls: stored chat completions and responses, idempotency keys, the usage
meter and the call traces."""
