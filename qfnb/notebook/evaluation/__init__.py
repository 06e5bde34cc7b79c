"""``%qfeval``: magic arguments to an ``EvaluationManager`` run (``run``), the options checked before any
model is called (``options``), the sample-size plan of a comparison (``plan``) and the report (``report``).
Imports ``render``, the notebook's shared modules and :mod:`qfnb.evaluation`; never chat, training or data."""
