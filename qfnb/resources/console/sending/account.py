"""Which console a config's account speaks, and the keys its calls need.

A 2026 Qianfan account has a v2 API key (bearer, for inference) and IAM keys, and no v1 app
keys (:attr:`qfnb._core.config.Config.api_version` is 2): its data sets live behind
``/v2/dataset?Action=...`` and its fine-tunes behind ``/v2/finetuning?Action=...``. Baidu's pages
for those calls (e.g. https://cloud.baidu.com/doc/qianfan-api/s/1mo1a2ttv, ``CreateFineTuningTask``;
https://cloud.baidu.com/doc/qianfan-api/s/9mnzot7x8, ``CreateDataset``) document one kind of
authentication only, "基于安全认证AK/SK": a bce-auth-v1 signature with the IAM access key and secret
key; the API key is for the inference API (https://cloud.baidu.com/doc/qianfan/s/Nmh4sv5t5).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qfnb._core.errors import AuthError
from qfnb._core.http.auth import credential_report

if TYPE_CHECKING:  # pragma: no cover
    from qfnb._core.config import Config

__all__ = ["MissingConsoleKeysError", "console_v2", "require_iam_keys"]


class MissingConsoleKeysError(AuthError):
    """A console call would need the IAM key pair, and the config lacks it (raised before anything is sent)."""


def console_v2(cfg: Config) -> bool:
    """True for a 2026 (v2) account on the cloud: its data sets are made with the ``/v2/dataset``
    calls. The embedded local platform and accounts with v1 keys keep the v1 data-set calls."""
    return cfg.api_version == 2 and not cfg.embedded


def require_iam_keys(cfg: Config, what: str = "fine-tuning") -> None:
    """Refuse (before anything is sent) when ``cfg`` cannot sign console calls: the IAM
    access key and secret key are both needed; an API key alone cannot sign them."""
    if cfg.access_key and cfg.secret_key:
        return
    unset = [name for name, value in (("QIANFAN_ACCESS_KEY", cfg.access_key), ("QIANFAN_SECRET_KEY", cfg.secret_key))
             if not value]
    missing = " and ".join(unset) + (" are" if len(unset) > 1 else " is")
    had = " (the v2 API key that is set signs inference calls only)" if cfg.bearer_token else ""
    raise MissingConsoleKeysError(
        f"{what} calls the Qianfan console (/v2/dataset, /v2/finetuning), whose calls are signed with the "
        f"IAM access key and secret key; {missing} not set{had}. Set QIANFAN_ACCESS_KEY and "
        "QIANFAN_SECRET_KEY (or access_key=/secret_key=) to the keys of the console's "
        "用户账号 → 安全认证 → Access Key page (https://console.bce.baidu.com/iam/#/iam/accesslist). "
        + credential_report(cfg))
