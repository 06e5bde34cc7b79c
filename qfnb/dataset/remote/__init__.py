"""A dataset on a platform (the cloud's or the local one): saved to and loaded from it (``_platform``;
a 2026 v2 account's ``/v2/dataset`` calls: ``_platform_v2``), its file put on BOS (``_upload``) and the
platform's own cleaning task (``_online``). The top room: reads rows through ``rows``; each module takes
the dataset as ``qfnb.dataset.view``'s narrow protocols, never its class."""
