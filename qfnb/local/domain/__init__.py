"""The platform's state and rules: the Platform object, SQLite store, console objects, datasets, jobs, batches.
Evaluations, seed names and the batch runner (which asks engines through ``convert``'s converters) live here too.
May import ``qfnb.local.convert``, ``settings``, ``training``, ``engines`` and ``qfnb.protocol``; never ``server``."""
