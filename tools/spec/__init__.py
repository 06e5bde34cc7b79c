"""The declarative specs qfnb's call surface is generated from (``python tools/generate.py``)."""
