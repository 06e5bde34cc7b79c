"""The embedded local platform: a Qianfan-compatible server doing the work for real.

``qfnb.local.server.app.create_app`` builds the ASGI app, ``qfnb.local.embedded.ensure_started``
runs it in-process, ``qfnb serve`` runs it standalone. Imports ``qfnb.protocol`` only.
"""
