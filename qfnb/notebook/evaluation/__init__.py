"""``%qfeval``: magic arguments to an ``EvaluationManager`` run (``run``), the options checked before
any model is called (``options``), and the report's tables and chart (``report``).
Imports ``render``, the notebook's shared modules and :mod:`qfnb.evaluation`; never chat, training or data."""
