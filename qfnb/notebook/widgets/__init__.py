"""ipywidgets views shared by the rooms: the batch progress bar (``progress_bar``) and a deploy's
progress and endpoint (``deploy_view``).
Imports ``render`` and the notebook's shared modules only; never chat, training, evaluation or data."""
