"""The console calls' request builders, one module per class (``FineTune``, ``Data``, ...): pure
functions that check their arguments and return a :class:`ConsoleRequest`. Part of
``qfnb.resources``: may import ``qfnb._core`` and ``qfnb.protocol`` only.

A request is (path, body, v2 action); ``@surface("FineTune.V2.create_task")`` names the public call it
becomes. ``tools/generate.py`` writes the public classes from these builders into
``qfnb/resources/console/<module>.py``: for each builder a classmethod
pair ``name`` (blocking) / ``aname`` (async) with the builder's parameters plus ``config=`` and
``retry=``, sending what the builder returns. A module's ``CLASSES`` declares its classes and
their docstrings; builders for a class declared in another module (``Data``'s ETL calls, say)
go on a generated mixin (``DataTasksCalls`` for ``data_tasks.py``) that the class subclasses.
Edit here, then run that script.
"""
