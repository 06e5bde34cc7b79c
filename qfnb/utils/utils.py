"""The official SDK's ``qianfan.utils.utils``: the small helpers user code and plugins import from it
(random ids, "is this package installed", name case conversions)."""

from __future__ import annotations

import importlib.util
import re
import secrets
import string

__all__ = [
    "assert_package_installed", "camel_to_snake", "check_package_installed", "first_lower_case",
    "generate_letter_num_random_id", "snake_to_camel",
]  # fmt: skip

_ID_ALPHABET = string.ascii_letters + string.digits


def generate_letter_num_random_id(len: int = 10) -> str:
    """A random id of ``len`` letters and digits (from :mod:`secrets`)."""
    if len < 0:
        raise ValueError(f"len: must be >= 0, got {len}")
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(len))


def check_package_installed(package_name: str) -> bool:
    """True when ``package_name`` can be imported (found, not imported)."""
    try:
        return importlib.util.find_spec(package_name) is not None
    except (ImportError, ValueError):  # a dotted name whose parent is missing
        return False


def assert_package_installed(package_name: str) -> None:
    """Raise ``ImportError`` naming the package and its install command when it is missing."""
    if not check_package_installed(package_name):
        raise ImportError(f"{package_name} is not installed: pip install {package_name}")


def camel_to_snake(name: str) -> str:
    """``DatasetId`` -> ``dataset_id``."""
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)).lower()


def snake_to_camel(name: str) -> str:
    """``dataset_id`` -> ``DatasetId``."""
    return "".join(part.capitalize() for part in name.split("_"))


def first_lower_case(name: str) -> str:
    """``DatasetId`` -> ``datasetId``."""
    return name[:1].lower() + name[1:]
