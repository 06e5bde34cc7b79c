"""The official SDK's ``qianfan.utils.bos_uploader``: qfnb's signed BOS calls
(:mod:`qfnb.resources.bos`) under the official module path."""

from qfnb.resources.bos import (
    BosHelper,
    BosObject,
    generate_bos_file_parent_path,
    generate_bos_file_path,
    is_valid_bos_path,
    parse_bos_path,
)

__all__ = ["BosHelper", "BosObject", "generate_bos_file_parent_path", "generate_bos_file_path",
           "is_valid_bos_path", "parse_bos_path"]
