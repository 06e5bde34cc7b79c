"""The official SDK's ``qianfan.utils.utils``: the small helpers user code and plugins import from it
(random ids, "is this package installed", name case conversions; defined in :mod:`qfnb._core.globals`)."""

from qfnb._core.globals import (
    assert_package_installed,
    camel_to_snake,
    check_package_installed,
    first_lower_case,
    generate_letter_num_random_id,
    snake_to_camel,
)

__all__ = [
    "assert_package_installed", "camel_to_snake", "check_package_installed", "first_lower_case",
    "generate_letter_num_random_id", "snake_to_camel",
]  # fmt: skip
