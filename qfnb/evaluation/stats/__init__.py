"""The numbers: paired tests and intervals (``paired``), anytime-valid sequences (``sequential``),
judge calibration (``calibrate``, ``judge_check``), the number of items a comparison needs (``plan``)
and the words a p-value is said in (``_words``). numpy and pandas only: no model call, no HTML.
Imports the evaluation's shared modules (``_errors``, ``data``); never evaluators, results or runs."""
