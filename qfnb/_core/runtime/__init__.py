"""The event-loop runtime: qfnb's background loop, the sync shell, polling and progress.
The top room of ``qfnb._core``: may import every other room of it and ``qfnb.protocol``;
never the layers above (``resources`` and up)."""
