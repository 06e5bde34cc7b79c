"""A dataset's prompts sent to a model: answered (``_infer``: ``Dataset.test_using_llm``), as a platform
batch-inference task (``_batchjob``) and under load (``stress``: the stress tests). Imports no other room."""
