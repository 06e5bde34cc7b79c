"""The backends of a durable ``BatchJob`` (:mod:`qfnb.resources.batch_job`, the door): what a job is whichever
backend runs it (state), the console's offline batch-inference task (console) and its rows' objects in BOS
(objects), the v2 Files + Batch API (files), a Ray cluster's job (ray_jobs) and the checks on what its log
says (ray_journal)."""
