"""What datasets and batch work look like in a cell: ``%qfbatch`` jobs (``batch``), a data insight
(``insight``) and a stress test's rounds (``stress``).
Imports ``render``, the notebook's shared modules and the SDK; never chat, training or evaluation."""
