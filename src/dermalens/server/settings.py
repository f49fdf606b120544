"""Server settings: environment variables (prefix ``DERMALENS_``) overridden by CLI options.

Why pydantic-settings: the same validated object serves `dermalens serve`, tests (which
pass values directly) and deployments that configure only through the environment.
The model list is ``DERMALENS_MODELS`` (a JSON list), not ``DERMALENS_MODEL``: that
name already selects the bundled-model override in `artifact.store.resolve`, which
still applies when no model is given here.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Languages of the web interface (files in `server/translations`).
LANGUAGES = ("en", "ja", "ko", "ru")


def default_log_db() -> Path:
    """``$XDG_DATA_HOME/dermalens/predictions.db`` (``~/.local/share`` when unset)."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "dermalens" / "predictions.db"


class ServerSettings(BaseSettings):
    """Everything the app factory needs; validated once at start."""

    model_config = SettingsConfigDict(env_prefix="DERMALENS_", extra="ignore", protected_namespaces=())

    #: Artifact folders; several make an ensemble; empty = the bundled model.
    models: list[Path] = Field(default_factory=list)
    #: Test-time augmentation views used when a request does not ask for a number.
    tta: int = Field(default=1, ge=1, le=8)
    #: The prediction sets' coverage (None: the artifact's own; one it has fitted, e.g. 0.95).
    coverage: float | None = Field(default=None, gt=0, lt=1)
    #: Most images in one request.
    max_files: int = Field(default=20, ge=1, le=1000)
    #: Most bytes in one request body (all files plus multipart overhead).
    max_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    #: SQLite prediction log; None disables logging (and the history page shows nothing).
    log_db: Path | None = Field(default_factory=default_log_db)
    #: A database URL for the log instead (``postgresql://user:pw@host/db``, shared by several
    #: servers, or ``sqlite:///path``); when given it replaces `log_db`.
    log_url: str | None = None
    #: Folder where uploaded images are kept (by SHA-256); None = images are never stored.
    store_images: Path | None = None
    #: Most images merged into one inference batch across concurrent requests.
    max_batch: int = Field(default=16, ge=1, le=256)
    #: Server processes (uvicorn workers), each with its own model and a share of the CPU threads.
    workers: int = Field(default=1, ge=1, le=64)
    #: Inference batches one process runs at the same time.
    #: 0 = one per inference thread: while one batch's results go back to its clients, the next
    #: batch already keeps the lanes busy (16 clients, 2 cores: 160 → 174 requests/s).
    concurrent_batches: int = Field(default=0, ge=0, le=64)
    #: Inference threads per process (the engine's lanes, each running ONNX Runtime on one thread);
    #: 0 = the machine's cores divided among the workers.
    threads: int = Field(default=0, ge=0, le=512)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    #: uvicorn's access log (one line per HTTP request on stderr). Off by default: every prediction
    #: is already in the prediction log, and the line cost the event loop 12 % of its time under
    #: load (`docs/performance.md`); turn it on to audit refused requests (401, 429...) too.
    access_log: bool = False
    #: Serve without tokens on purpose, even off loopback (a warning on every start).
    no_auth: bool = False
    #: TLS (uvicorn's own options): certificate chain and private key, PEM; HSTS is sent when on.
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    #: Rows older than this many days are purged at start and daily; None keeps everything.
    retention_days: int | None = Field(default=None, ge=1)
    #: Requests per minute one token may make (per server process; 0 = no limit).
    rate_limit: int = Field(default=600, ge=0)
    #: Predict requests one client (token; client address under --no-auth) may have in flight at once.
    max_uploads_per_client: int = Field(default=4, ge=1, le=1024)
    #: A file holding the key of the keyed hash (HMAC-SHA256) logged instead of each file name;
    #: None logs names as sent. Created, with a random key, when missing.
    filename_key: Path | None = None
    #: Signs the web page's session cookies; one random value shared by all worker processes.
    session_secret: str = Field(default_factory=lambda: secrets.token_hex(32), repr=False)

    @field_validator(
        "log_db",
        "store_images",
        "log_url",
        "ssl_certfile",
        "ssl_keyfile",
        "filename_key",
        "retention_days",
        "coverage",
        mode="before",
    )
    @classmethod
    def _off_means_none(cls, value: object) -> object:
        """``--log-db off`` / ``--log-url off`` (or an empty value) means none."""
        if isinstance(value, str) and value.strip().lower() in ("", "off", "none", "no", "false"):
            return None
        return value

    @field_validator("log_url")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        """A URL the log can open (SQLite or PostgreSQL), checked here so a typo fails at start."""
        if value is not None:
            from dermalens.server.log import log_url

            log_url(value)
        return value

    @field_validator("log_db", "store_images", "ssl_certfile", "ssl_keyfile", "filename_key")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerSettings:
        """A certificate without its key (or the reverse) is a mistake, found at start."""
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("give both --ssl-certfile and --ssl-keyfile, or neither")
        return self

    def log_target(self) -> str | Path | None:
        """Where the prediction log lives (a URL or a SQLite path), or None when logging is off."""
        return self.log_url or self.log_db

    def batches(self) -> int:
        """Inference batches one worker process runs at once: given, or one per inference thread."""
        return self.concurrent_batches or self.ort_threads()

    def ort_threads(self) -> int:
        """Inference threads (lanes) for one worker process: given, or the cores shared out evenly."""
        return self.threads or max(1, (os.cpu_count() or 1) // self.workers)

    def to_environment(self) -> dict[str, str]:
        """These settings as ``DERMALENS_*`` variables, from which each worker process rebuilds them."""
        out = {}
        for name, value in self.model_dump().items():
            if isinstance(value, list):
                text = json.dumps([str(v) for v in value])
            else:
                text = "off" if value is None else str(value)
            out[f"DERMALENS_{name.upper()}"] = text
        return out

    def model_arg(self) -> list[str] | None:
        """What `Classifier.load` takes: None for the bundled model, else the paths."""
        return [str(p) for p in self.models] or None
