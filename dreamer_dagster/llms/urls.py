"""Credentials inside an endpoint URL: what is shown and fingerprinted, and what is sent.

A ``base_url`` may carry a credential: a user and password
(``http://user:pw@host/v1``) or a query parameter (``?api-key=...``, the way
Azure and many gateways take a key). None of it may reach a model's identity
(fingerprints, the cache's file name and meta table, ``step.json``), its
``repr``, Dagster metadata, a pool name, a log line or an error message:

- :func:`split_url` parses a URL into an :class:`Endpoint`: ``public`` (the URL
  without the user and password and without the secret query parameters; what
  every model shows and fingerprints), and what a request needs (the base
  without query, the query string as given, the user and password);
- :meth:`Endpoint.request_url` joins a path the way a provider expects:
  ``<base>/chat/completions?<query>`` (the query after the path, never inside it);
  a user and password go as HTTP basic auth (``Endpoint.basic_auth``), as the
  OpenAI SDK's HTTP client sends them;
- :func:`scrub` removes secrets (the API key, the URL's password and secret
  query values) and any URL credential pattern from a text (an error body, an
  exception's message) before it is raised or logged.

A query parameter is secret when its name, lower-cased with ``-``, ``_`` and
``.`` removed, is one of :data:`SECRET_QUERY_NAMES` or ends with one of
:data:`SECRET_QUERY_SUFFIXES` (``api-key``, ``api_key``, ``X-Amz-Signature``,
``client_secret``, ``access_token``, ``sig``, ``code``...). Secrets shorter
than :data:`MIN_SCRUB_LENGTH` characters are left in free text (replacing them
would garble every message); they still never appear in a URL shown.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

__all__ = [
    "MIN_SCRUB_LENGTH",
    "SECRET_QUERY_NAMES",
    "SECRET_QUERY_SUFFIXES",
    "Endpoint",
    "is_secret_param",
    "public_url",
    "scrub",
    "sdk_client_options",
    "secrets_of",
    "sending_endpoint",
    "split_url",
]

#: Query parameter names (normalized: lower case, no ``-``, ``_`` or ``.``) that hold secrets.
SECRET_QUERY_NAMES = frozenset(
    {
        "key",
        "apikey",
        "token",
        "auth",
        "authorization",
        "bearer",
        "jwt",
        "sig",
        "signature",
        "secret",
        "password",
        "passwd",
        "pwd",
        "pass",
        "code",
        "session",
        "sessionid",
        "credential",
        "credentials",
        "xamzcredential",
        "xgoogcredential",
    }
)
#: Endings of normalized names that hold secrets (``access_token``, ``client_secret``,
#: ``subscription-key``, ``X-Amz-Signature``...).
SECRET_QUERY_SUFFIXES = (
    "apikey",
    "subscriptionkey",
    "token",
    "secret",
    "password",
    "signature",
)
#: Secrets shorter than this are not searched for in free text.
MIN_SCRUB_LENGTH = 4
#: What stands for a removed secret in a text.
MASK = "***"

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@?#'\"]+@")
_QUERY_PARAM = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&#\s'\"]+)=(?P<value>[^&#\s'\"]*)")


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]", "", unquote(name).lower())


def is_secret_param(name: str) -> bool:
    """Whether a query parameter named ``name`` holds a secret (see the module's list)."""
    normalized = _normalized(name)
    return normalized in SECRET_QUERY_NAMES or normalized.endswith(SECRET_QUERY_SUFFIXES)


@dataclass(frozen=True)
class Endpoint:
    """A parsed endpoint URL: ``public`` is what is shown and fingerprinted; the rest is sent."""

    url: str
    public: str
    base: str  # scheme://host[:port]/path: no user, no password, no query
    query: str = ""  # the query string as given (secrets included): sent with every request
    username: str | None = None
    password: str | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        """The URL's secret values (the password, secret query values, the basic-auth token)."""
        found: list[str] = []
        if self.password:
            found.append(self.password)
        if self.username is not None or self.password is not None:
            found.append(f"{self.username or ''}:{self.password or ''}")
            found.append((self.basic_auth() or "").removeprefix("Basic "))
        found += [
            value for name, value in parse_qsl(self.query, keep_blank_values=True) if is_secret_param(name)
        ]
        return tuple(dict.fromkeys(value for value in found if value))

    def request_url(self, path: str) -> str:
        """``<base><path>``, then the URL's query: ``.../v1/chat/completions?api-key=...``."""
        url = self.base + path
        if not self.query:
            return url
        return url + ("&" if "?" in path else "?") + self.query

    def query_params(self) -> dict[str, str]:
        """The query as a dict (an SDK's ``default_query``)."""
        return dict(parse_qsl(self.query, keep_blank_values=True))

    def basic_auth(self) -> str | None:
        """``Basic <base64 user:password>`` when the URL holds a user or password, else None."""
        if self.username is None and self.password is None:
            return None
        pair = f"{self.username or ''}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(pair).decode()

    def with_auth_in_base(self) -> str:
        """The base with the user and password kept (an httpx-based SDK sends them as basic auth)."""
        if self.username is None and self.password is None:
            return self.base
        parts = urlsplit(self.base)
        userinfo = quote(self.username or "", safe="")
        if self.password is not None:
            userinfo += ":" + quote(self.password, safe="")
        return urlunsplit(parts._replace(netloc=f"{userinfo}@{parts.netloc}"))


def split_url(url: str) -> Endpoint:
    """Parse ``url`` (a trailing ``/`` on its path dropped). A URL holding no credential is
    its own public form, so fingerprints of ordinary URLs stay what they were."""
    parts = urlsplit(url)
    netloc = parts.netloc
    userinfo, has_userinfo, host = netloc.rpartition("@")
    path = parts.path.rstrip("/")
    base = urlunsplit((parts.scheme, host, path, "", "")) if parts.scheme else url.split("?")[0].rstrip("/")
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    secret_query = any(is_secret_param(name) for name, _ in pairs)
    username = password = None
    if has_userinfo:
        name, has_password, secret = userinfo.partition(":")
        username = unquote(name)
        password = unquote(secret) if has_password else None
    if not has_userinfo and not secret_query:
        public = url.rstrip("/") if not parts.query else url
    else:
        kept = "&".join(
            piece
            for piece in parts.query.split("&")
            if piece and not is_secret_param(piece.partition("=")[0])
        )
        public = urlunsplit((parts.scheme, host, path, kept, ""))
    return Endpoint(url, public, base, parts.query, username, password)


def public_url(url: str | None) -> str | None:
    """``url`` without its user, password and secret query parameters (None stays None)."""
    return None if url is None else split_url(url).public


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with each secret (as given, percent-encoded and percent-decoded) replaced by
    ``***``, URL user-and-password parts removed and secret query values masked."""
    values: set[str] = set()
    for secret in secrets:
        if not secret or len(secret) < MIN_SCRUB_LENGTH:
            continue
        values.update({secret, quote(secret, safe=""), unquote(secret)})
    for value in sorted((v for v in values if len(v) >= MIN_SCRUB_LENGTH), key=len, reverse=True):
        text = text.replace(value, MASK)
    text = _USERINFO.sub(lambda found: found["scheme"], text)
    return _QUERY_PARAM.sub(
        lambda found: (
            f"{found['lead']}{found['name']}={MASK}" if is_secret_param(found["name"]) else found[0]
        ),
        text,
    )


def sending_endpoint(public: str | None, declared: Endpoint | None) -> Endpoint | None:
    """Where requests go: the ``declared`` endpoint (its secrets included) while a model's
    ``base_url`` is still its public form, else ``public`` parsed (it was set afterwards)."""
    if public is None:
        return None
    if declared is not None and declared.public == public:
        return declared
    return split_url(public)


def sdk_client_options(endpoint: Endpoint | None, options: dict) -> dict:
    """``base_url`` and ``default_query`` for an httpx-based SDK (OpenAI's, Anthropic's): the
    base without its query (which the SDK would join the path after) but with the user and
    password (which httpx sends as basic auth), and the query as ``default_query`` (merged
    under one the user passed)."""
    if endpoint is None:
        return options
    options = {**options, "base_url": endpoint.with_auth_in_base()}
    if endpoint.query:
        options["default_query"] = {**endpoint.query_params(), **(options.get("default_query") or {})}
    return options


def secrets_of(api_key: str | None, endpoint: Endpoint | None) -> tuple[str, ...]:
    """What no message may show: the API key (not the ``no-key`` placeholder) and the
    endpoint's secrets."""
    found = (api_key, *(endpoint.secrets if endpoint else ()))
    return tuple(secret for secret in found if secret and secret != "no-key")
