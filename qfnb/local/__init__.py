"""The embedded local platform: a Qianfan-compatible server doing the work for real.

``qfnb.local.server.app.create_app`` builds the ASGI app; ``qfnb serve`` runs it standalone and
``qfnb serve --daemon`` as the data dir's shared background service. Imports ``qfnb.protocol`` only.
"""
