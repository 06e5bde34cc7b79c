"""The platform's HTTP face: the ASGI app, the one serving flow (``serve``), route tables with their error mappers,
guards, wire shapes, control routes and the daemon entry. The top room: may import every room of
``qfnb.local`` and ``qfnb.protocol``; no protocol's route module imports another's."""
