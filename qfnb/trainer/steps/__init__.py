"""What the pipeline's steps are made of beyond the official actions: the data step
(``load_action``: ``LoadDataSetAction``), a run's checkpoints scored by the user's metric
(``checkpoint_metric``), an RFT run's reward in the user's process (``rewards``) and the ledger row of an
ended run (``accounting``). On the action protocol, the configs and the events at the package's top;
imports no other room."""
