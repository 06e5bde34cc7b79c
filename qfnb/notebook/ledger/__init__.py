"""What this notebook's calls did and cost: ``%qfusage`` and ``%qfcache`` (``usage``: the usage ledger and
the response cache; ``usage_view``: the manager's table) and ``%qftrace`` (``traces``: the local platform's
calls as a waterfall). Draws with ``render``; imports no other room."""
