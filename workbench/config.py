"""Where the workbench keeps its files, and the optional config file.

``WORKBENCH_HOME`` (default ``./.workbench``) holds the SQLite database, trained models and
``config.toml``. The config names OpenAI-compatible endpoints; a model id ``NAME:MODEL``
then goes to endpoint ``NAME``:

```toml
[endpoints.gateway]
base_url = "http://127.0.0.1:8000/v1"
api_key_env = "GATEWAY_KEY"      # the name of an environment variable (preferred)
# api_key = "..."                # or the key itself; it never enters traces or logs
max_connections = 32             # requests in flight at once to this endpoint, per process
max_retries = 6                  # retries of a transient error (429, 5xx, timeout, drop)
backoff = 0.5                    # seconds before the first retry; doubles, with jitter
timeout = 120                    # seconds per request
```
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import ConfigError


def home() -> Path:
    return Path(os.environ.get("WORKBENCH_HOME", ".workbench")).resolve()


def database_url() -> str:
    """``WORKBENCH_DATABASE_URL`` if set (e.g. a PostgreSQL URL), else SQLite under home."""
    url = os.environ.get("WORKBENCH_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{home() / 'workbench.db'}"


@dataclass(frozen=True)
class Endpoint:
    name: str
    base_url: str
    api_key: str | None = None
    limits: tuple[tuple[str, float], ...] = ()  # max_connections, max_retries, backoff, timeout

    def __repr__(self) -> str:  # never print the key
        return f"Endpoint(name={self.name!r}, base_url={self.base_url!r})"


def config_path() -> Path:
    return Path(os.environ.get("WORKBENCH_CONFIG", home() / "config.toml"))


def load_config() -> dict:
    path = config_path()
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None


LIMITS = ("max_connections", "max_retries", "backoff", "timeout")


def endpoints() -> dict[str, Endpoint]:
    """Named OpenAI-compatible endpoints from the config file."""
    found = {}
    for name, spec in (load_config().get("endpoints") or {}).items():
        if not isinstance(spec, dict) or "base_url" not in spec:
            raise ConfigError(f"{config_path()}: endpoints.{name} needs a base_url")
        key = spec.get("api_key")
        if key is None and spec.get("api_key_env"):
            key = os.environ.get(spec["api_key_env"])
        limits = tuple((k, spec[k]) for k in LIMITS if k in spec)
        for k, value in limits:
            if not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"{config_path()}: endpoints.{name}.{k} must be a number >= 0")
        found[name] = Endpoint(name, spec["base_url"], key, limits)
    return found
