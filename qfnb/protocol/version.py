"""qfnb's version: one place, importable from every layer (the daemon's runtime file carries it)."""

__version__ = "0.1.0"
#: the ``request-source`` header / ``request_source`` field qfnb's calls carry (the official SDK
#: sends ``qianfan_py_sdk_v<version>``)
REQUEST_SOURCE = f"qfnb_py_sdk_v{__version__}"
