"""``python -m qfnb``: the ``qfnb`` command line, for an environment whose scripts are not on the path."""

from qfnb.cli import main

raise SystemExit(main())
