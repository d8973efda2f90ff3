"""Named model endpoints: which server an `openai@<name>:<model>` spec talks to, and where its key comes from.

An experiment declares its servers once, under `endpoints:` in the config; each spec then names its own, so the
evaluated model (a local vLLM server) and the judge (api.openai.com) never share one base URL, as Inspect's
model roles keep them apart:

    endpoints:
      local:  {base_url: "http://127.0.0.1:8000/v1"}                              # no key: local servers take any
      openai: {base_url: "https://api.openai.com/v1", api_key_env: OPENAI_API_KEY}

Whoever loads a config calls `use_endpoints(config.endpoints)` before loading models; `load_model` then
resolves `openai@local:...` through `endpoint("local")`.

Credentials stay out of everything emlab writes or prints. A declared endpoint holds only the *name* of the
environment variable with its key (read at load time, never stored), and its base URL may carry no user:password@
and no query string (the config is copied into every report). A base URL from the environment
(EMLAB_OPENAI_BASE_URL) may carry them, so `public_url` strips both before a URL reaches an identity (cache keys,
the SQLite store), an error message or a repr.
"""

from __future__ import annotations

import base64
import os
import re
import threading
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import unquote, urlsplit, urlunsplit

from emlab.errors import ModelSpecError
from emlab.models.spec import ENDPOINT_NAME

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def public_url(url: str) -> str:
    """`url` without user:password@, query string or fragment, and without a trailing slash: safe to show and hash."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # not a URL at all: show nothing of it that could be a secret
        return "<unparseable URL>"
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host + (f":{port}" if port is not None else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")).rstrip("/")


def url_secrets(url: str) -> list[str]:
    """The parts of `url` that may be credentials (userinfo, its password and Basic-auth form, query values)."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return [url]
    found = []
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        plain = unquote(userinfo)  # httpx sends it as Basic auth, which a server may echo back in base64
        found += [userinfo, *userinfo.split(":", 1)[1:], base64.b64encode(plain.encode()).decode()]
    for pair in parts.query.split("&"):
        value = pair.partition("=")[2]
        if value:
            found.append(value)
    return [s for s in found if s]


def check_base_url(url: str) -> str:
    """A declared endpoint's base URL: http(s), with a host, and no credentials in it. Raises ValueError."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # raises on a malformed port
    except ValueError:
        raise ValueError("base_url is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("base_url must be an http:// or https:// URL with a host, e.g. http://127.0.0.1:8000/v1")
    if "@" in parts.netloc or parts.query:
        raise ValueError(
            "base_url must not carry credentials (user:password@ or a query string): the config is copied into "
            "every report; put the key in an environment variable and name that variable in api_key_env"
        )
    return url.strip().rstrip("/")


def check_key_env(name: str | None) -> str | None:
    """The name of the environment variable holding an endpoint's key (None: no key). Raises ValueError."""
    if name is None:
        return None
    if not _ENV_NAME.fullmatch(name):  # the message never repeats the value: it may be a pasted key
        raise ValueError(
            "api_key_env must be the *name* of an environment variable (letters, digits and '_', e.g. "
            "OPENAI_API_KEY), not the key itself"
        )
    return name


def check_endpoint_name(name: str) -> str:
    """An endpoint's name as a spec writes it (`openai@<name>:`). Raises ValueError."""
    if not isinstance(name, str) or not ENDPOINT_NAME.fullmatch(name):
        raise ValueError(f"endpoint name {name!r} must be letters, digits, '_', '.' or '-' (it is written openai@NAME:)")
    return name


@dataclass(frozen=True)
class Endpoint:
    """A declared server: its base URL and the name of the environment variable with its key (never the key)."""

    name: str
    base_url: str
    api_key_env: str | None = None

    def __post_init__(self) -> None:
        try:
            check_endpoint_name(self.name)
            object.__setattr__(self, "base_url", check_base_url(self.base_url))
            check_key_env(self.api_key_env)
        except ValueError as e:
            raise ModelSpecError(f"endpoint {self.name!r}: {e}") from None

    def api_key(self) -> str | None:
        """The key, read from the environment now; None when the endpoint needs none. ModelSpecError when unset."""
        if self.api_key_env is None:
            return None
        value = os.environ.get(self.api_key_env, "").strip()
        if not value:
            raise ModelSpecError(
                f"endpoint {self.name!r} ({self.base_url}) reads its API key from the environment variable "
                f"{self.api_key_env}, which is not set"
            )
        return value


_ACTIVE: dict[str, Endpoint] = {}
_LOCK = threading.Lock()


def as_endpoint(name: str, value: Any) -> Endpoint:
    """An Endpoint from an Endpoint, a mapping or an object with `base_url` and `api_key_env` (the config's)."""
    if isinstance(value, Endpoint):
        return value if value.name == name else Endpoint(name, value.base_url, value.api_key_env)
    if isinstance(value, Mapping):
        unknown = set(value) - {"base_url", "api_key_env"}
        if unknown or "base_url" not in value:
            raise ModelSpecError(f"endpoint {name!r} takes base_url and optionally api_key_env; got {sorted(value)}")
        return Endpoint(name, str(value["base_url"]), value.get("api_key_env"))
    return Endpoint(name, str(value.base_url), getattr(value, "api_key_env", None))


def use_endpoints(endpoints: Mapping[str, Any] | None) -> None:
    """Make `endpoints` (name -> endpoint, e.g. `config.endpoints`) the ones specs resolve to, replacing any before.

    None or {} clears them. Call it once per loaded config, before any model loads.
    """
    resolved = {name: as_endpoint(name, value) for name, value in (endpoints or {}).items()}
    with _LOCK:
        _ACTIVE.clear()
        _ACTIVE.update(resolved)


def active_endpoints() -> dict[str, Endpoint]:
    """The endpoints specs resolve to now."""
    with _LOCK:
        return dict(_ACTIVE)


def endpoint(name: str) -> Endpoint:
    """The declared endpoint `name`; ModelSpecError naming the declared ones when it is not."""
    with _LOCK:
        found = _ACTIVE.get(name)
        declared = sorted(_ACTIVE)
    if found is None:
        known = f"declared: {', '.join(declared)}" if declared else "none is declared"
        raise ModelSpecError(
            f"endpoint {name!r} is not declared ({known}); add it under endpoints: in the experiment config, "
            f"e.g. endpoints: {{{name}: {{base_url: 'http://127.0.0.1:8000/v1', api_key_env: MY_KEY}}}}"
        )
    return found
