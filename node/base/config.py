"""The node's configuration: one frozen, typed object, loaded once and passed down.

Sources, later ones winning: the field defaults, a TOML file, then environment variables
named ``REFNODE_<FIELD>`` (``REFNODE_PORT=8701``, ``REFNODE_DATA_DIR=/var/lib/refnode``).
Environment variables with the prefix that name no field are ignored, because other
``REFNODE_`` variables exist (the key passphrase, for one); an unknown key in the *file*
is an error, so that a typo there does not pass unnoticed.

A relative ``data_dir`` is relative to the directory of the file that sets it, or to the
working directory when it comes from the environment or the default. Without an explicit
file, :func:`load_config` reads ``<data_dir>/refnode.toml`` if it exists: the file that
``refnode init`` writes with :func:`write_default_config`.

Nothing here is a global: the CLI calls :func:`load_config` once and hands the
:class:`Config` to whatever needs it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from protocol.wire import MAX_ENVELOPE_AGE_S, MAX_ENVELOPE_BYTES

ENV_PREFIX = "REFNODE_"
CONFIG_FILENAME = "refnode.toml"
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class ConfigError(Exception):
    """A configuration value is missing, unknown or invalid. ``key`` names the setting."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class Config(BaseModel):
    """Every setting of a node. Frozen: build a new one rather than change it."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    data_dir: Path = Field(
        default=Path("refnode-data"), description="Database, keys and this file live here."
    )
    host: str = Field(
        default="127.0.0.1", min_length=1, description="Address the HTTP server listens on."
    )
    port: int = Field(
        default=8701,
        ge=0,
        le=65535,
        description="Port the HTTP server listens on (0: any free port).",
    )
    inbox_workers: int = Field(
        default=0,
        ge=0,
        le=32,
        description="Inbox front processes beside the node process: with it, they share the HTTP "
        "connections and each takes in referral envelopes all the way to the database, so that the "
        "inbox uses more cores (0: one process does everything). About one per core beyond the first.",
    )
    public_url: str = Field(
        default="",
        description="URL peers use to reach this node; empty means http://{host}:{port}. "
        "Set it when behind a proxy or listening on 0.0.0.0.",
    )
    org_name: str = Field(
        default="My organisation",
        min_length=1,
        max_length=200,
        description="Our name, shown to peers.",
    )
    log_format: Literal["console", "json"] = Field(
        default="console", description='"json" in production, "console" in a terminal.'
    )
    log_level: str = Field(
        default="info", description="One of debug, info, warning, error, critical."
    )
    max_envelope_bytes: int = Field(
        default=MAX_ENVELOPE_BYTES,
        gt=0,
        le=MAX_ENVELOPE_BYTES,
        description="Largest envelope we accept.",
    )
    csv_import_max_rows: int = Field(
        default=200_000,
        gt=0,
        description="A CSV import with more data rows than this is refused (413) as soon as the "
        "row past the limit arrives.",
    )
    csv_import_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        gt=0,
        description="A CSV import larger than this is refused (413) as soon as that much has "
        "arrived. The file is streamed, never held whole in memory.",
    )
    retry_base_delay_s: float = Field(
        default=2.0, gt=0, description="First retry of a failed delivery after about this long."
    )
    retry_max_delay_s: float = Field(
        default=3600.0, gt=0, description="Retries are never further apart than this."
    )
    delivery_deadline_s: int = Field(
        default=3 * 24 * 3600,
        gt=0,
        lt=MAX_ENVELOPE_AGE_S,
        description="Give up delivering an envelope after this long (must stay under the 7-day envelope age limit).",
    )
    invitation_ttl_s: int = Field(
        default=7 * 24 * 3600, gt=0, description="Invitations expire after this long."
    )
    auth_failures_per_min: int = Field(
        default=20,
        ge=1,
        description="Wrong admin-API tokens taken per minute from one client address, and for one "
        "token prefix; past it the API answers 429 rate_limited with Retry-After, even to a right token.",
    )
    invitation_failures_per_hour: int = Field(
        default=20,
        ge=1,
        description="Wrong invitation keys taken per hour from one client address, one requesting node, "
        "and for one invitation; past it the inbox answers 429 rate_limited with Retry-After.",
    )
    outbox_poll_interval_s: float = Field(
        default=1.0, gt=0, description="How often the outbox looks for due deliveries."
    )
    request_timeout_s: float = Field(
        default=30.0, gt=0, description="Timeout of one HTTP request to a peer."
    )
    header_timeout_s: float = Field(
        default=20.0,
        gt=0,
        description="A connection that has not sent a whole request head this long after it "
        "opened, or after its last answer, is closed (longer than the 15 s for which aiohttp "
        "clients, ours included, keep an idle connection).",
    )
    body_timeout_s: float = Field(
        default=20.0,
        gt=0,
        description="A request whose body has not all arrived this long after its route "
        "starts reading it is answered 408 and its connection closed.",
    )
    max_connections: int = Field(
        default=1000,
        ge=16,
        description="Most connections one serving process keeps open; fewer when its open-file "
        "limit is lower. At the cap a new connection closes the oldest one that has no request "
        "in progress.",
    )
    time_zone: str = Field(
        default="UTC", min_length=1, description="The organisation's time zone (IANA name, e.g. "
        "Australia/Sydney): dates on pages and in e-mail are shown in it."
    )
    session_idle_s: int = Field(
        default=1800, ge=60, le=86400, description="A console session ends after this long without a request."
    )
    session_absolute_s: int = Field(
        default=43200, ge=300, le=30 * 86400, description="A console session ends this long after sign-in."
    )
    signin_failures_limit: int = Field(
        default=5, ge=1, le=100, description="Wrong passwords for one e-mail address, within "
        "signin_window_s, that lock it."
    )
    signin_window_s: int = Field(default=900, ge=60, le=86400, description="See signin_failures_limit.")
    signin_lock_s: int = Field(
        default=900, ge=60, le=7 * 86400, description="How long a locked address stays locked, unless an "
        "admin unlocks it first."
    )
    password_link_ttl_s: int = Field(
        default=72 * 3600, ge=300, le=30 * 86400, description="How long a set-password or reset link works."
    )
    smtp_host: str = Field(
        default="", description="SMTP server for e-mail; empty: mail is written as .eml files to "
        "<data_dir>/mail-out instead."
    )
    smtp_port: int = Field(default=587, ge=1, le=65535, description="SMTP port.")
    smtp_security: Literal["starttls", "tls", "none"] = Field(
        default="starttls", description="starttls (port 587), tls (implicit, port 465), or none (a relay on "
        "this host only)."
    )
    smtp_user: str = Field(default="", description="SMTP user name; empty: no authentication.")
    smtp_password_file: str = Field(
        default="", description="File (mode 0600) holding the SMTP password; relative to data_dir."
    )
    smtp_password_env: str = Field(
        default="REFNODE_SMTP_PASSWORD",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="NAME of the environment variable holding the SMTP password, when no file is set.",
    )
    sms_gateway_url: str = Field(
        default="", description="Base URL of an SMS gateway speaking the Twilio Messages API "
        "(POST {base}/2010-04-01/Accounts/{account}/Messages.json); empty: no SMS is sent."
    )
    sms_account: str = Field(default="", description="SMS gateway account (Twilio: the account SID).")
    sms_from: str = Field(default="", description="The number or sender name text messages come from.")
    sms_token_file: str = Field(
        default="", description="File (mode 0600) holding the SMS gateway's auth token; relative to data_dir."
    )
    sms_token_env: str = Field(
        default="REFNODE_SMS_TOKEN",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="NAME of the environment variable holding the SMS token, when no file is set.",
    )
    mail_from: str = Field(
        default="", description="From address of the node's e-mail; empty: refnode@<public host>."
    )
    message_keep_days: int = Field(
        default=30, ge=1, le=3650, description="Days an e-mail or text message is kept in its queue after "
        "it was sent (after it was queued, if it was given up), then deleted: they carry names and deal titles."
    )
    max_upload_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024, description="Largest document a "
        "user may upload."
    )
    enable_pq_suite: bool = Field(
        default=True, description="Also offer the ML-KEM-768 + X25519 hybrid suite."
    )
    key_passphrase_env: str = Field(
        default="REFNODE_KEY_PASSPHRASE",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="NAME of the environment variable holding the key passphrase (never the passphrase).",
    )

    _source: Path | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _fill_public_url(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("public_url"):
            data = {**data, "public_url": derived_public_url(data.get("host", "127.0.0.1"), data.get("port", 8701))}
        return data

    @model_validator(mode="after")
    def _check(self) -> Config:
        if not re.match(r"^https?://[^/\s]+(/\S*)?$", self.public_url):
            raise ValueError("public_url must be an http:// or https:// URL")
        if self.public_url.endswith("/"):
            raise ValueError("public_url must not end with '/'")
        if self.log_level.lower() not in LOG_LEVELS:
            raise ValueError(f"log_level must be one of {', '.join(LOG_LEVELS)}")
        if self.retry_max_delay_s < self.retry_base_delay_s:
            raise ValueError("retry_max_delay_s must be at least retry_base_delay_s")
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"time_zone {self.time_zone!r} is not an IANA time zone (e.g. Europe/London)") from None
        if self.session_absolute_s < self.session_idle_s:
            raise ValueError("session_absolute_s must be at least session_idle_s")
        return self

    @property
    def database_path(self) -> Path:
        return self.data_dir / "node.db"

    @property
    def mail_dir(self) -> Path:
        """Where mail goes as .eml files when no SMTP server is set."""
        return self.data_dir / "mail-out"

    @property
    def documents_dir(self) -> Path:
        """Uploaded documents, by content hash."""
        return self.data_dir / "documents"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")

    @property
    def from_address(self) -> str:
        if self.mail_from:
            return self.mail_from
        host = self.public_url.split("://", 1)[1].split("/", 1)[0].split(":", 1)[0]
        named = any(c.isalpha() for c in host) and "." in host
        return f"refnode@{host if named else 'localhost'}"

    def smtp_password(self, env: Mapping[str, str] | None = None) -> str:
        """The SMTP password, from its file or the environment ('' if neither)."""
        if self.smtp_password_file:
            path = Path(self.smtp_password_file)
            path = path if path.is_absolute() else self.data_dir / path
            if path.stat().st_mode & 0o077:
                raise PermissionError(f"{path} must be readable by its owner only (chmod 600 {path})")
            return path.read_text(encoding="utf-8").strip()
        return (env if env is not None else os.environ).get(self.smtp_password_env, "")

    def sms_token(self, env: Mapping[str, str] | None = None) -> str:
        """The SMS gateway's token, from its file or the environment ('' if neither)."""
        if self.sms_token_file:
            path = Path(self.sms_token_file)
            path = path if path.is_absolute() else self.data_dir / path
            if path.stat().st_mode & 0o077:
                raise PermissionError(f"{path} must be readable by its owner only (chmod 600 {path})")
            return path.read_text(encoding="utf-8").strip()
        return (env if env is not None else os.environ).get(self.sms_token_env, "")

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def config_path(self) -> Path:
        """The file this configuration was read from, else where ``refnode init`` puts it."""
        return self._source if self._source is not None else self.data_dir / CONFIG_FILENAME

    @property
    def log_level_number(self) -> int:
        return logging.getLevelNamesMapping()[self.log_level.upper()]


FIELDS: tuple[str, ...] = tuple(Config.model_fields)


def derived_public_url(host: Any, port: Any) -> str:
    """The public URL when none is set: ``http://{host}:{port}``."""
    host = str(host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    return f"http://{host}:{port}"


def load_config(path: Path | None, env: Mapping[str, str]) -> Config:
    """The configuration from ``path`` (or ``<data_dir>/refnode.toml`` when ``path`` is
    None and that file exists) overridden by ``REFNODE_*`` variables in ``env``.

    Raises :class:`ConfigError` naming the offending key or variable.
    """
    from_env: dict[str, str] = {}
    for field in FIELDS:
        value = env.get(ENV_PREFIX + field.upper())
        if value is not None and not (field == "public_url" and value == ""):
            from_env[field] = value
    if "data_dir" in from_env:
        from_env["data_dir"] = str(Path(from_env["data_dir"]).expanduser().absolute())

    if path is None:
        data_dir = Path(from_env.get("data_dir", Config.model_fields["data_dir"].default))
        candidate = data_dir / CONFIG_FILENAME
        source = candidate if candidate.is_file() else None
    else:
        source = Path(path)
        if not source.is_file():
            raise ConfigError(f"configuration file {source} does not exist")
    from_file = _read_file(source) if source is not None else {}
    # A public_url in the file that is only what the file's host and port make (as
    # 'refnode init' wrote it before 0.2) was not set on purpose: it follows the host and
    # port, so that REFNODE_PORT or 'serve --port' move it too.
    if from_file.get("public_url") == derived_public_url(
        from_file.get("host", Config.model_fields["host"].default),
        from_file.get("port", Config.model_fields["port"].default),
    ):
        del from_file["public_url"]

    origin = {key: f"{source}: key {key!r}" for key in from_file}
    origin |= {key: f"environment variable {ENV_PREFIX}{key.upper()}" for key in from_env}
    try:
        config = Config(**(from_file | from_env))
    except ValidationError as exc:
        raise _config_error(exc, origin) from None
    config._source = source.absolute() if source is not None else None
    return config


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ConfigError(
            f"{path}: unknown key {unknown[0]!r} (known keys: {', '.join(FIELDS)})", key=unknown[0]
        )
    if "data_dir" in data and isinstance(data["data_dir"], str):
        data["data_dir"] = str((path.parent / Path(data["data_dir"]).expanduser()).absolute())
    return data


def _config_error(exc: ValidationError, origin: Mapping[str, str]) -> ConfigError:
    error = exc.errors()[0]
    key = str(error["loc"][0]) if error["loc"] else None
    message = error["msg"].removeprefix("Value error, ")
    if key is None:  # a check across fields: name the first field it mentions
        named = [f for f in FIELDS if f in message]
        key = min(named, key=message.find) if named else None
    where = origin.get(key, f"setting {key!r}") if key else "configuration"
    value = (
        f" (got {error['input']!r})"
        if key and "input" in error and not isinstance(error["input"], dict)
        else ""
    )
    return ConfigError(f"{where}: invalid value{value}: {message}", key=key)


def write_default_config(path: Path, **overrides: Any) -> Path:
    """Write a commented TOML configuration to ``path`` (which must not exist yet).

    Settings in ``overrides`` are written as values, the others as commented-out defaults.
    A ``data_dir`` is written relative to the file's directory. Returns ``path``.
    """
    path = Path(path)
    unknown = sorted(set(overrides) - set(FIELDS))
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r}", key=unknown[0])
    try:
        Config(**overrides)
    except ValidationError as exc:
        raise _config_error(exc, {}) from None
    if "data_dir" in overrides:
        target = Path(overrides["data_dir"]).expanduser().absolute()
        overrides = {**overrides, "data_dir": os.path.relpath(target, path.parent.absolute())}

    lines = [
        "# refnode configuration. Every setting can also be set by an environment variable",
        f"# named {ENV_PREFIX}<SETTING>, e.g. {ENV_PREFIX}PORT=8701, which wins over this file.",
        "# A relative data_dir is relative to this file's directory.",
        "",
    ]
    for name, field in Config.model_fields.items():
        lines.append(f"# {field.description}")
        if name in overrides:
            lines.append(f"{name} = {_toml_value(overrides[name])}")
        else:
            default = field.default
            if name == "public_url":
                lines.append('# public_url = "https://refnode.example.org"')
            else:
                lines.append(f"# {name} = {_toml_value(default)}")
        lines.append("")

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines))
    return path


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)  # a TOML basic string
