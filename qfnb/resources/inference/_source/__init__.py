"""The inference call surface's source, written once, async.

Each module here declares one resource's ``ado``: the official SDK's parameters in its
positional order, the documented body fields keyword-only, a docstring per parameter, and a
body that builds the resource's typed call (:mod:`..params`). ``tools/unasync_calls.py``
derives from it, into ``../_generated/``, the ``stream``-dependent overloads and the blocking
``do`` twin. These modules are not imported at runtime: the generated ones are. Edit here,
then run ``python tools/unasync_calls.py`` (``scripts/test.sh`` runs it with ``--check``).
"""
