"""Wire protocols as pure converters, one module each: a parsed request -> ``ChatAsk``/``TextAsk``, ``Delta``s -> wire.
``answer`` holds what every render reads. They import ``qfnb.local.engines`` and ``qfnb.protocol`` only:
never a route module (``qfnb.local.server``), the domain, or another protocol's converter.
"""
