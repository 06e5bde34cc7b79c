"""Client configuration: one frozen object, environment read once in :meth:`Config.from_env`.

No global singleton: every resource object resolves its own ``Config`` (explicit keyword
arguments win over the environment). With no credentials at all, :func:`resolve_config`
points the client at the default backend: the data dir's local platform daemon
(:class:`qfnb._core.backend.daemon.LocalDaemon`), or whatever :func:`set_default_backend` installed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, NoReturn

from qfnb._core.env import FIELD_NAMES, environment, normalize, read_env
from qfnb._core.errors import ValidationError
from qfnb.protocol.errors import RETRYABLE_CONSOLE_CODES, RETRYABLE_INFERENCE_CODES
from qfnb.protocol.wires.qianfan import routes

if TYPE_CHECKING:
    from qfnb._core.backend import Access
    from qfnb._core.transport import Transport

__all__ = ["FIELD_NAMES", "SECRET_FIELDS", "Config", "GlobalConfig", "embedded_config", "get_config",
           "get_config_with_kwargs", "global_settings", "mask", "resolve_config"]

logger = logging.getLogger("qfnb")

#: Fields whose values are credentials: never shown in reprs, logs or errors.
SECRET_FIELDS = frozenset({"sk", "access_token", "secret_key", "bearer_token", "access_code"})
_KEYISH = frozenset({"ak", "access_key"})


def mask(value: str | None, keep: int = 4) -> str:
    """``abcd****`` for logs and reprs; never the whole credential."""
    if not value:
        return "None"
    return value[:keep] + "****" if len(value) > keep * 2 else "****"


@dataclass(frozen=True)
class Config:
    """Everything a client needs to reach the platform. Immutable; see :meth:`from_env`."""

    ak: str | None = None
    sk: str | None = None
    access_token: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    bearer_token: str | None = None
    app_id: str | None = None
    access_code: str | None = None
    base_url: str = routes.DEFAULT_BASE_URL
    model_api_prefix: str = routes.MODEL_API_PREFIX
    console_api_base_url: str = routes.DEFAULT_CONSOLE_BASE_URL
    chat_v2_api_route: str = routes.CHAT_V2
    iam_base_url: str = routes.DEFAULT_IAM_BASE_URL
    bos_endpoint: str = "https://bj.bcebos.com"
    #: ``bos:/bucket/prefix/``: where a v2 account's data-set files are put for the console to import
    #: (``QFNB_BOS_UPLOAD_PATH``; the 2026 ``CreateImportTask`` imports from the user's own BOS only)
    bos_upload_path: str | None = None
    iam_sign_expiration_sec: int = 300
    auth_timeout: float = 5.0
    access_token_refresh_min_interval: float = 3600.0
    bearer_token_expired_interval: int = 43200
    qps_limit: float = 0.0
    rpm_limit: float = 0.0
    tpm_limit: int = 0
    llm_api_retry_count: int = 3
    llm_api_retry_timeout: float = 300.0
    llm_api_retry_backoff_factor: float = 1.0
    llm_api_retry_jitter: float = 1.0
    llm_api_retry_max_wait_interval: float = 120.0
    llm_api_retry_err_codes: frozenset[int] = RETRYABLE_INFERENCE_CODES
    console_api_retry_count: int = 1
    console_api_retry_timeout: float = 60.0
    console_api_retry_backoff_factor: float = 0.0
    console_api_retry_jitter: float = 1.0
    console_api_retry_max_wait_interval: float = 120.0
    console_api_retry_err_codes: frozenset[int] = RETRYABLE_CONSOLE_CODES
    proxy: str = ""
    ssl_verification_enabled: bool = True
    no_auth: bool = False
    use_custom_endpoint: bool = False
    enable_private: bool = False
    iam_host: str | None = None
    train_status_polling_interval: float = 30.0
    model_publish_status_polling_interval: float = 30.0
    deploy_status_polling_interval: float = 30.0
    evaluation_online_polling_interval: float = 30.0
    import_status_polling_interval: float = 2.0
    export_status_polling_interval: float = 2.0
    release_status_polling_interval: float = 2.0
    #: connection-pool size of the HTTP client (high-concurrency batches)
    max_connections: int = 1000
    #: the response cache (``off``: the official SDK's behaviour; ``on``: identical requests answer
    #: from the cache; ``refresh``: ask again and store the new answer). ``ChatCompletion(cache=True)``;
    #: None: the process's default (off, or on in a kernel that loaded ``%load_ext qfnb``)
    cache: str | None = None
    #: default model per api type (``{"chat": ...}``); the embedded platform sets its own
    default_models: Mapping[str, str] = field(default_factory=dict)
    #: set by :func:`resolve_config` when it points at the embedded platform
    embedded: bool = False
    #: what sends the requests (:class:`qfnb._core.transport.Transport`; None: aiohttp's pool, or
    #: httpx's with a proxy). Inject e.g. ``ASGITransport(app)`` to call an ASGI app in-process.
    transport: Transport | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        """Read ``QIANFAN_*`` variables once (``env`` defaults to ``os.environ`` over the DotEnv file,
        ``.env`` in the working directory or ``QIANFAN_DOT_ENV_CONFIG_FILE``); kwargs win.

        Lower-case keyword names follow the official SDK (``ak=``, ``sk=``, ``access_key=``,
        ``secret_key=``, ``base_url=``...). Unknown keywords raise ``TypeError``.
        """
        values = read_env(environment() if env is None else env)
        if env is None and _GLOBAL_CONFIG is not None:
            settings = {k: v for k, v in _GLOBAL_CONFIG.settings().items() if k in FIELD_NAMES}
            for name in [k for k, v in settings.items() if v is None]:  # set to None: unset
                values.pop(name, None)
            values.update(normalize(settings))
        values.update(normalize(overrides))
        return cls(**values)

    @property
    def is_configured(self) -> bool:
        """True if any credential (or an explicit ``QIANFAN_BASE_URL``) is present."""
        return bool(self.ak or self.sk or self.access_token or self.access_key or self.secret_key
                    or self.bearer_token or self.access_code or self.no_auth
                    or self.base_url != routes.DEFAULT_BASE_URL)

    @property
    def api_version(self) -> int:
        """Which API family inference calls use when the caller names none: 2 (the OpenAI-style
        ``/v2`` routes, bearer auth) with a v2 API key, or with IAM keys and no v1 keys (a 2026
        account has no v1 app keys); 1 (the OAuth/``/rpc/2.0`` routes) where v1 keys exist alone,
        and on the embedded platform (which speaks both)."""
        if self.embedded:
            return 1
        if self.bearer_token:
            return 2
        if self.ak or self.sk or self.access_token or self.access_code:
            return 1
        return 2 if (self.access_key and self.secret_key) else 1

    def with_overrides(self, **overrides: Any) -> Config:
        """A copy with some fields changed (same kwarg names as :meth:`from_env`)."""
        return replace(self, **normalize(overrides)) if overrides else self

    def credential_fingerprint(self) -> tuple[Any, ...]:
        """Hashable identity of the credentials + endpoints (used to share clients)."""
        cached = self.__dict__.get("_fingerprint")
        if cached is None:
            parts = [getattr(self, f.name) for f in fields(self) if f.name != "default_models"]
            cached = (*parts, tuple(sorted(self.default_models.items())))
            object.__setattr__(self, "_fingerprint", cached)
        return cached

    def __hash__(self) -> int:
        return hash(self.credential_fingerprint())

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value == f.default or (f.name == "default_models" and not value):
                continue
            if f.name in SECRET_FIELDS:
                value = "****"
            elif f.name in _KEYISH:
                value = mask(value)
            shown.append(f"{f.name}={value!r}")
        return f"Config({', '.join(shown)})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:  # never pickle credentials into notebooks / caches
        raise TypeError("qfnb Config holds credentials and cannot be pickled")


# ---- the official SDK's process-wide settings object (``qfnb.get_config()``, ``qfnb.config``)

# official upper-case names whose qfnb field is not simply the lower-case name
_RENAMES = {"APPID": "app_id", "QPS": "qps_limit"}
# official settings qfnb has no use for: kept (readable, settable) with the official defaults
UNUSED_SETTINGS: Mapping[str, Any] = {
    "DISABLE_EB_SDK": True, "EB_SDK_INSTALLED": False, "INFER_RESOURCE_REFRESH_INTERVAL": 600.0,
    "ENABLE_AUTH": None, "EXPORT_FILE_SIZE_LIMIT": 2 * 1024**3, "ETL_STATUS_POLLING_INTERVAL": 2.0,
    "GET_ENTITY_CONTENT_FAILED_RETRY_TIMES": 3, "TRAINER_STATUS_POLLING_BACKOFF_FACTOR": 3.0,
    "TRAINER_STATUS_POLLING_RETRY_TIMES": 3.0, "BATCH_RUN_STATUS_POLLING_INTERVAL": 30.0,
    "DEFAULT_FINE_TUNE_TRAIN_TYPE": "ERNIE-Speed", "BOS_HOST_REGION": "bj",
    "V2_INFER_API_DOWNGRADE": False, "FILE_ENCODING": "utf-8", "DISABLE_CACHE": False,
    "CACHE_DIR": "", "DOT_ENV_CONFIG_FILE": ".env",
}
_SETTABLE = FIELD_NAMES - {"transport", "default_models", "embedded"}


def _setting(name: str) -> str:
    """The key a ``GlobalConfig`` attribute is stored under (any case; official renames applied)."""
    upper = name.upper()
    if upper in _RENAMES:
        return _RENAMES[upper]
    if upper in UNUSED_SETTINGS:
        return upper
    lower = name.lower()
    if lower in _SETTABLE:
        return lower
    raise AttributeError(f"qfnb config has no setting {name!r}")


class GlobalConfig:
    """The settings object :func:`get_config` returns (attribute names in either case): what is set
    here, :meth:`Config.from_env` lays over the environment; an attribute not set reads the
    environment's value now."""

    def __init__(self, **values: Any) -> None:
        object.__setattr__(self, "_values", {})
        for key, value in values.items():
            setattr(self, key, value)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        key = _setting(name)
        values: dict[str, Any] = self.__dict__["_values"]
        if key in values:
            return values[key]
        if key in UNUSED_SETTINGS:
            return UNUSED_SETTINGS[key]
        return getattr(Config.from_env(), key)

    def __setattr__(self, name: str, value: Any) -> None:
        self.__dict__["_values"][_setting(name)] = value

    def __delattr__(self, name: str) -> None:
        self.__dict__["_values"].pop(_setting(name), None)

    def settings(self) -> dict[str, Any]:
        """What was set here, by qfnb field name (the official-only settings upper-case)."""
        return dict(self.__dict__["_values"])

    def dict(self) -> dict[str, Any]:
        """Every setting under its official upper-case name (as the official pydantic model)."""
        cfg = Config.from_env()
        out = {f.upper(): getattr(cfg, f) for f in sorted(_SETTABLE)}
        out.update(UNUSED_SETTINGS)
        out.update({k.upper(): v for k, v in self.settings().items()})
        return out

    def auth_key(self) -> str:
        """A short stable id of the credentials (never the credentials themselves)."""
        return format(abs(hash(Config.from_env().credential_fingerprint())), "x")[:24]

    def __repr__(self) -> str:
        return f"GlobalConfig({Config.from_env()!r})"

    def __reduce__(self) -> NoReturn:  # never pickle credentials into notebooks / caches
        raise TypeError("qfnb GlobalConfig holds credentials and cannot be pickled")


#: the process-wide settings object (``qfnb.config._GLOBAL_CONFIG = None`` forgets it, as in the
#: official SDK: the mirror module forwards that name here)
_GLOBAL_CONFIG: GlobalConfig | None = None


def get_config() -> GlobalConfig:
    """The process-wide settings object (created on first use)."""
    global _GLOBAL_CONFIG
    if _GLOBAL_CONFIG is None:
        _GLOBAL_CONFIG = GlobalConfig()
    return _GLOBAL_CONFIG


def global_settings() -> dict[str, Any]:
    """What was set on :func:`get_config`'s object (empty when nothing was)."""
    cfg = _GLOBAL_CONFIG
    return {} if cfg is None else cfg.settings()


def get_config_with_kwargs(**kwargs: Any) -> Config:
    """The configuration a client would use, with ``kwargs`` (any case) over the global one."""
    return Config.from_env(**{k.lower(): v for k, v in kwargs.items() if k.lower() in _SETTABLE})


def resolve_config(config: Config | None = None, **overrides: Any) -> Config:
    """The config to use: ``config`` (or the environment) plus ``overrides``.

    With no credentials configured anywhere, find (or start) the data dir's local platform
    daemon and return a config pointing at it, logging one INFO notice on the ``qfnb`` logger.
    """
    cfg = (config.with_overrides(**overrides) if config is not None else Config.from_env(**overrides))
    _check_placeholders(cfg)
    if cfg.is_configured:
        return cfg
    platform = _local_platform()
    global _NOTICE_SHOWN
    if not _NOTICE_SHOWN:
        _NOTICE_SHOWN = True
        logger.info("qfnb: no Qianfan credentials configured; using the embedded local platform at %s",
                    platform.base_url)
    return embedded_config(cfg, platform)


def embedded_config(cfg: Config, platform: Access) -> Config:
    """``cfg`` pointing at the local ``platform`` (its URLs and keys)."""
    return replace(
        cfg,
        base_url=platform.base_url,
        console_api_base_url=platform.base_url,
        iam_base_url=platform.base_url,
        bos_endpoint=f"{platform.base_url}/bos",
        ak=platform.api_key,
        sk=platform.secret_key,
        access_key=platform.access_key,
        secret_key=platform.iam_secret_key,
        default_models=dict(platform.default_models),
        embedded=True,
        # jobs on this machine move in seconds: poll each second, unless the user chose an interval
        **_local_polling(cfg),
    )


def _local_polling(cfg: Config) -> dict[str, Any]:
    """Each polling interval still at its cloud default, set to 1 s."""
    return {f.name: 1.0 for f in fields(cfg)
            if f.name.endswith("_polling_interval") and getattr(cfg, f.name) == f.default}


_NOTICE_SHOWN = False

_PLACEHOLDER = re.compile(r"\.{2,}|…+|x{2,}|<[^>]*>|your[\w\- ]*|\*+", re.IGNORECASE)
_CREDENTIAL_FIELDS = ("ak", "sk", "access_key", "secret_key", "access_token", "bearer_token")


def _check_placeholders(cfg: Config) -> None:
    """A documentation placeholder (``access_key="..."``, ``"your_ak"``, ``"xxx"``) given as a
    credential: say so before anything is sent, instead of failing later at the cloud's door."""
    for name in _CREDENTIAL_FIELDS:
        value = getattr(cfg, name)
        if isinstance(value, str) and _PLACEHOLDER.fullmatch(value.strip()):
            raise ValidationError(name, f"{value.strip()[:12]!r} is a placeholder from the docs, not a key: pass "
                                        "your Qianfan credentials (they only work against the cloud platform), "
                                        "or leave all keys unset to use qfnb's embedded local platform")


_default_backend: Callable[[], Access] | None = None


def set_default_backend(factory: Callable[[], Access] | None) -> None:
    """Replace the default backend used when nothing is configured (None: the local daemon).

    ``factory()`` returns an :class:`~qfnb._core.backend.Access`: an object with ``base_url``,
    ``api_key``, ``secret_key``, ``access_key``, ``iam_secret_key`` and ``default_models``
    (e.g. an in-process platform in tests, or what a :class:`~qfnb._core.backend.daemon.LocalDaemon`'s
    ``ensure()`` returns).
    """
    global _default_backend
    _default_backend = factory


def _local_platform() -> Access:
    """The default backend when nothing is configured: the data dir's shared daemon."""
    if _default_backend is not None:
        return _default_backend()
    from qfnb._core.backend.daemon import LocalDaemon  # deferred: loads the daemon's client (`%load_ext qfnb` does not)

    return LocalDaemon().ensure()
