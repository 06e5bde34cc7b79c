"""ipywidgets views: progress bar, training dashboard, fine-tune launcher."""
