"""Configuration: one class, read from ``CMDB_SYNC_*`` environment variables and a ``.env`` file."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///cmdb-sync.db"

TokenList = Annotated[list[str], NoDecode]


class ConfigError(Exception):
    """Configuration that cannot work; its message is the one line an operator sees."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CMDB_SYNC_", env_file=".env", extra="ignore")

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="CMDB_SYNC_DATABASE_URL: SQLAlchemy URL. Default: SQLite file cmdb-sync.db in the "
        "working directory. PostgreSQL: postgresql+psycopg://user:pass@host:5432/db",
    )
    read_database_url: str | None = Field(
        None,
        description="CMDB_SYNC_READ_DATABASE_URL: a PostgreSQL streaming replica of the database, for the read "
        "API and the UI (the webhook and every command write to CMDB_SYNC_DATABASE_URL). Unset: reads go to "
        "the database itself.",
    )
    webhook_tokens: TokenList = Field(
        default_factory=list,
        description="CMDB_SYNC_WEBHOOK_TOKENS: accepted X-AppStack-Token values, comma-separated "
        "or a JSON list of strings (two at once while rotating).",
    )
    webhook_allow_unauthenticated: bool = Field(
        False,
        description="CMDB_SYNC_WEBHOOK_ALLOW_UNAUTHENTICATED: accept deliveries without a token when "
        "no token is configured. Off by default: the server refuses to start without tokens.",
    )
    max_body_bytes: int = Field(
        10 * 1024 * 1024,
        gt=0,
        description="CMDB_SYNC_MAX_BODY_BYTES: largest accepted webhook body; larger ones get 413.",
    )
    api_tokens: TokenList = Field(
        default_factory=list,
        description="CMDB_SYNC_API_TOKENS: bearer tokens for the read API, comma-separated. Unset: "
        "the read API is open (a warning is logged).",
    )
    api_admin_tokens: TokenList = Field(
        default_factory=list,
        description="CMDB_SYNC_API_ADMIN_TOKENS: bearer tokens that may also reveal variable values "
        "and read the event journal.",
    )
    appstack_token: str | None = Field(
        None,
        description="CMDB_SYNC_APPSTACK_TOKEN: personal access token for the AppStack OpenAPI (backfill).",
    )
    db_pool_size: int = Field(10, gt=0, description="CMDB_SYNC_DB_POOL_SIZE: connections per process and pool.")
    log_level: str = Field("INFO", description="CMDB_SYNC_LOG_LEVEL: DEBUG, INFO, WARNING or ERROR.")
    log_format: Literal["text", "json"] = Field(
        "text", description="CMDB_SYNC_LOG_FORMAT: text (a line a person reads) or json (one object a line)."
    )
    access_log: bool = Field(False, description="CMDB_SYNC_ACCESS_LOG: log every request but the health probes.")
    header_timeout_seconds: int = Field(
        10, gt=0, description="CMDB_SYNC_HEADER_TIMEOUT_SECONDS: a client must send its request headers within this."
    )
    body_timeout_seconds: int = Field(
        30, gt=0, description="CMDB_SYNC_BODY_TIMEOUT_SECONDS: a webhook body must arrive within this (else 408)."
    )
    worker_max_rss_mib: int = Field(
        512,
        gt=0,
        description="CMDB_SYNC_WORKER_MAX_RSS_MIB: a server worker whose memory stays above this is replaced "
        "(gracefully, checked every 30 s).",
    )

    @field_validator("webhook_tokens", "api_tokens", "api_admin_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: object) -> object:
        """Comma-separated, or a JSON list of strings (what pydantic-settings reads for a list
        elsewhere): ``["a","b"]`` split on its commas would be the tokens ``["a"`` and ``"b"]``,
        and every delivery refused with nothing to say why."""
        if not isinstance(value, str):
            return value
        if value.lstrip().startswith("["):
            try:
                listed = json.loads(value)
            except ValueError:
                listed = None
            if not isinstance(listed, list) or not all(isinstance(token, str) for token in listed):
                msg = "starts with '[' but is not a JSON list of strings: write the tokens separated by commas"
                raise ValueError(msg)
            return [token.strip() for token in listed if token.strip()]
        return [token.strip() for token in value.split(",") if token.strip()]

    @field_validator("database_url", "read_database_url")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        """SQLite through Python's sqlite3, PostgreSQL through psycopg 3: the drivers cmdb-sync
        ships with. A plain ``postgresql://`` means psycopg; another driver is refused in one line
        that says what to write instead (asyncio drivers are not used: the code is synchronous)."""
        if value is None or value == "":
            return None
        scheme, sep, rest = value.partition("://")
        if not sep:
            msg = "must be a URL: sqlite:///path/to/file.db or postgresql+psycopg://user:pass@host:5432/db"
            raise ValueError(msg)
        backend, _, driver = scheme.partition("+")
        if backend == "sqlite" and driver in ("", "pysqlite"):
            return value
        if backend in ("postgresql", "postgres") and driver in ("", "psycopg"):
            return f"postgresql+psycopg://{rest}"
        if backend == "sqlite":
            msg = f"the {driver} driver is not used: write sqlite://{rest}"
        elif backend in ("postgresql", "postgres"):
            msg = f"the {driver} driver is not used: write postgresql+psycopg://{rest}"
        else:
            msg = "must be a sqlite:/// or postgresql+psycopg:// URL"
        raise ValueError(msg)

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            msg = "must be DEBUG, INFO, WARNING or ERROR"
            raise ValueError(msg)
        return level

    @field_validator("read_database_url")
    @classmethod
    def _replica_of_postgresql(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if not value.startswith("postgresql"):
            msg = "a read replica is a PostgreSQL streaming replica: postgresql+psycopg://user:pass@host:5432/db"
            raise ValueError(msg)
        if str(info.data.get("database_url", "")).startswith("sqlite"):
            msg = "a SQLite database has no replica: unset it, or set CMDB_SYNC_DATABASE_URL to PostgreSQL"
            raise ValueError(msg)
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def check_webhook_auth(self) -> None:
        """Refuse to run a receiver that anyone could write to, unless that was asked for."""
        if not self.webhook_tokens and not self.webhook_allow_unauthenticated:
            msg = (
                "no webhook token configured: set CMDB_SYNC_WEBHOOK_TOKENS, or "
                "CMDB_SYNC_WEBHOOK_ALLOW_UNAUTHENTICATED=true to accept unauthenticated deliveries"
            )
            raise ConfigError(msg)


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with invalid values turned into one ConfigError line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"CMDB_SYNC_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        msg = f"invalid configuration: {problems}"
        raise ConfigError(msg) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
