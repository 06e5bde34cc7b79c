"""The official SDK's ``qianfan.common``: tools for function calling (:mod:`qfnb.common.tool`)."""
