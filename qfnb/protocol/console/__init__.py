"""The console as data: its enums, fine-tune limits and checkpoints, the cloud's models, default model
names and the evaluations' text metrics."""
