"""Offline batch inference as durable jobs: the task (tasks), OpenAI's files and batches (files), the rows
(rows) and the runner that feeds the engines (runner)."""
