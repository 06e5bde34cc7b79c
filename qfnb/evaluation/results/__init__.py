"""What an evaluation gives back and how it shows: ``EvaluationResult`` (``result``, its view
``result_view``), the paired ``Comparison`` (``compare``, ``compare_view``) and the repeats'
``Stability``. Imports ``stats``, ``evaluators`` and the shared modules; never runs."""
