"""``python -m qfnb``: the ``qfnb`` command line, for an environment whose scripts are not on the path."""

from qfnb.cli import main

if __name__ == "__main__":  # importing it (a walk over the package's modules) runs nothing
    raise SystemExit(main())
