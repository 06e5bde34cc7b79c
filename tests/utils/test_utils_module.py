"""``qfnb.utils.utils``, the official ``qianfan.utils.utils`` helpers user code and plugins import
(the official ``retry_test`` and ``tool_test`` import from it)."""

from __future__ import annotations

import pytest

from qfnb.utils.utils import (
    assert_package_installed,
    camel_to_snake,
    check_package_installed,
    first_lower_case,
    generate_letter_num_random_id,
    snake_to_camel,
)


def test_random_ids_are_letters_and_digits_of_the_asked_length_and_differ() -> None:
    ids = {generate_letter_num_random_id() for _ in range(20)}
    assert len(ids) == 20 and all(len(i) == 10 and i.isalnum() and i.isascii() for i in ids)
    assert len(generate_letter_num_random_id(32)) == 32
    with pytest.raises(ValueError, match="len"):
        generate_letter_num_random_id(-1)


def test_installed_packages_are_told_apart_from_missing_ones() -> None:
    assert check_package_installed("json") and check_package_installed("qfnb.utils")
    assert not check_package_installed("no_such_package_qfnb") and not check_package_installed("no_such.child")
    with pytest.raises(ImportError, match="pip install no_such_package_qfnb"):
        assert_package_installed("no_such_package_qfnb")


def test_name_cases() -> None:
    assert camel_to_snake("DatasetId") == "dataset_id" and camel_to_snake("HTTPRequest") == "http_request"
    assert snake_to_camel("dataset_id") == "DatasetId"
    assert first_lower_case("DatasetId") == "datasetId"
