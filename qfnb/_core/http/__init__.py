"""The HTTP client: the send pipeline (``stages``), the record's side of a call (``recording``; layers:
stages -> recording), auth, retries, rate limits, decoding, ``QfResponse``.
A room of ``qfnb._core``: may import ``qfnb.protocol`` and the rooms below it (record, globals,
config, backend, transport, errors); only ``runtime`` imports it."""
