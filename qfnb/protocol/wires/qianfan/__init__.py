"""Qianfan's wires: the v1/v2 inference requests and their checks (inference), the v1 sampling options
(sampling), the typed answers (answer, answers), the platform's routes and built-in model catalog
(routes, models.json), bce-auth-v1 signing (signing) and batch inference (batch). Stands on
:mod:`qfnb.protocol.wires.chat`."""
