"""The platform's HTTP face: the ASGI app, routes, guards, wire shapes, control and the daemon entry."""
