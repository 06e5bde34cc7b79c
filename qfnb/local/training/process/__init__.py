"""The training process: the fine-tune worker's main (``python -m qfnb.local.training.process.worker <job_dir>``:
spec in, adapter out) and its place among several data-parallel workers (distributed). Stands on the
training's shared modules (spec, data, lora, modes, rft...); none of them imports it back."""
