"""qfnb's engines on a cluster: what a Ray job runs on the workers (:mod:`.ray_batch`)."""
