"""The official SDK's ``qianfan.config``: one process-wide settings object, as its docs teach::

    qfnb.get_config().AK = "..."          # or .ak, .AccessKey / .ACCESS_KEY, .AUTH_TIMEOUT = 10
    qfnb.AK("...")                         # the older setter spelling of the same

Every client created afterwards uses what was set here: :meth:`qfnb._core.config.Config.from_env`
reads the environment, then lays these settings over it (keyword arguments of a client win
over both). ``qfnb.config._GLOBAL_CONFIG = None`` forgets them, as in the official SDK.
Reading an attribute that was not set gives the value the environment gives now.
"""

from __future__ import annotations

from typing import Any

from qfnb._core import config as _core_config
from qfnb._core.config import Config as _Config

__all__ = ["AK", "SK", "AccessKey", "AccessToken", "Config", "GlobalConfig", "SecretKey", "encoding",
           "get_config", "get_config_with_kwargs"]

# official upper-case names whose qfnb field is not simply the lower-case name
_RENAMES = {"APPID": "app_id", "QPS": "qps_limit"}
# official settings qfnb has no use for: kept (readable, settable) with the official defaults
_UNUSED: dict[str, Any] = {
    "DISABLE_EB_SDK": True, "EB_SDK_INSTALLED": False, "INFER_RESOURCE_REFRESH_INTERVAL": 600.0,
    "ENABLE_AUTH": None, "EXPORT_FILE_SIZE_LIMIT": 2 * 1024**3, "ETL_STATUS_POLLING_INTERVAL": 2.0,
    "GET_ENTITY_CONTENT_FAILED_RETRY_TIMES": 3, "TRAINER_STATUS_POLLING_BACKOFF_FACTOR": 3.0,
    "TRAINER_STATUS_POLLING_RETRY_TIMES": 3.0, "BATCH_RUN_STATUS_POLLING_INTERVAL": 30.0,
    "DEFAULT_FINE_TUNE_TRAIN_TYPE": "ERNIE-Speed", "BOS_HOST_REGION": "bj",
    "V2_INFER_API_DOWNGRADE": False, "FILE_ENCODING": "utf-8", "DISABLE_CACHE": False,
    "CACHE_DIR": "", "DOT_ENV_CONFIG_FILE": ".env",
}
_FIELDS = frozenset(f for f in _core_config.FIELD_NAMES if f not in ("transport", "default_models", "embedded"))


def _field(name: str) -> str:
    upper = name.upper()
    if upper in _RENAMES:
        return _RENAMES[upper]
    if upper in _UNUSED:
        return upper
    lower = name.lower()
    if lower in _FIELDS:
        return lower
    raise AttributeError(f"qfnb config has no setting {name!r}")


class GlobalConfig:
    """The settings object :func:`get_config` returns (attribute names in either case)."""

    def __init__(self, **values: Any) -> None:
        object.__setattr__(self, "_values", {})
        for key, value in values.items():
            setattr(self, key, value)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        field = _field(name)
        values: dict[str, Any] = self.__dict__["_values"]
        if field in values:
            return values[field]
        if field in _UNUSED:
            return _UNUSED[field]
        return getattr(_Config.from_env(), field)

    def __setattr__(self, name: str, value: Any) -> None:
        self.__dict__["_values"][_field(name)] = value

    def __delattr__(self, name: str) -> None:
        self.__dict__["_values"].pop(_field(name), None)

    def settings(self) -> dict[str, Any]:
        """What was set here, by qfnb field name (the official-only settings upper-case)."""
        return dict(self.__dict__["_values"])

    def dict(self) -> dict[str, Any]:
        """Every setting under its official upper-case name (as the official pydantic model)."""
        cfg = _Config.from_env()
        out = {f.upper(): getattr(cfg, f) for f in sorted(_FIELDS)}
        out.update(_UNUSED)
        out.update({k.upper(): v for k, v in self.settings().items()})
        return out

    def auth_key(self) -> str:
        """A short stable id of the credentials (never the credentials themselves)."""
        return format(abs(hash(_Config.from_env().credential_fingerprint())), "x")[:24]

    def __repr__(self) -> str:
        return f"GlobalConfig({_Config.from_env()!r})"

    def __reduce__(self) -> Any:  # never pickle credentials into notebooks / caches
        raise TypeError("qfnb GlobalConfig holds credentials and cannot be pickled")


#: the official name of the settings class
Config = GlobalConfig

_GLOBAL_CONFIG: GlobalConfig | None = None


def get_config() -> GlobalConfig:
    """The process-wide settings object (created on first use)."""
    global _GLOBAL_CONFIG
    if _GLOBAL_CONFIG is None:
        _GLOBAL_CONFIG = GlobalConfig()
    return _GLOBAL_CONFIG


def global_settings() -> dict[str, Any]:
    """What was set on :func:`get_config`'s object (the package root plugs this into
    :data:`qfnb._core.plugins.global_settings`)."""
    cfg = _GLOBAL_CONFIG
    return {} if cfg is None else cfg.settings()


def get_config_with_kwargs(**kwargs: Any) -> _Config:
    """The configuration a client would use, with ``kwargs`` (any case) over the global one."""
    known = {k.lower(): v for k, v in kwargs.items() if k.lower() in _FIELDS}
    return _Config.from_env(**known)


def _set(name: str, label: str, value: str | None) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError(f"{label}: expected a non-empty string or None, got {value!r}")
    setattr(get_config(), name, value)


def AK(ak: str | None) -> None:
    """Set ``get_config().AK``, the API key (env ``QIANFAN_AK``); None clears it."""
    _set("AK", "QIANFAN_AK", ak)


def SK(sk: str | None) -> None:
    """Set ``get_config().SK``, the secret key (env ``QIANFAN_SK``); None clears it."""
    _set("SK", "QIANFAN_SK", sk)


def AccessToken(access_token: str | None) -> None:
    """Set ``get_config().ACCESS_TOKEN`` (env ``QIANFAN_ACCESS_TOKEN``); None clears it."""
    _set("ACCESS_TOKEN", "QIANFAN_ACCESS_TOKEN", access_token)


def AccessKey(access_key: str | None) -> None:
    """Set ``get_config().ACCESS_KEY``, the IAM access key (env ``QIANFAN_ACCESS_KEY``)."""
    _set("ACCESS_KEY", "QIANFAN_ACCESS_KEY", access_key)


def SecretKey(secret_key: str | None) -> None:
    """Set ``get_config().SECRET_KEY``, the IAM secret key (env ``QIANFAN_SECRET_KEY``)."""
    _set("SECRET_KEY", "QIANFAN_SECRET_KEY", secret_key)


def encoding() -> str:
    """The file encoding the SDK reads and writes files with."""
    return str(get_config().FILE_ENCODING)
