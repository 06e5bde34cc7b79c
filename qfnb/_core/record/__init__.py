"""What the client keeps of its calls: the response cache, the usage ledger, prices, the budget.
A room of ``qfnb._core``: may import ``qfnb.protocol`` and the rooms below it (globals, config,
backend, transport, errors); ``http`` and ``runtime`` import it, never the reverse."""
