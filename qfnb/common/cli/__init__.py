"""The official SDK's ``qianfan`` command line (``qianfan.common.cli``), on argparse.

``qfnb chat|completion|txt2img|embedding|plugin|dataset|trainer|evaluation|api|cache|openai|proxy``
take the official commands' arguments; :mod:`qfnb.cli` adds them beside ``serve``/``start``/...
Nothing here is imported by ``import qfnb``: only the ``qfnb``/``qianfan`` entry point loads it.
"""
