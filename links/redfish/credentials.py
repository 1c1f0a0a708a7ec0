"""What a Redfish client needs to reach real BMCs: the account and how to trust the service's certificate.

A credentials file (TOML, readable by its owner only; a warning names it otherwise)::

    username = "dps-steer"
    password = "..."
    auth = "session"           # session (default) or basic
    ca_file = "site-ca.pem"    # CA bundle that signed the BMCs' certificates; relative to this file.
                               # Without it the system's trust store is used.

Without a file, the user name and password come from ``$FACTORY_TWIN_REDFISH_USER`` and
``$FACTORY_TWIN_REDFISH_PASSWORD`` (never from the command line, where other users could read them).
"""

from __future__ import annotations

import os
import ssl
import stat
import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

USER_ENV, PASSWORD_ENV = "FACTORY_TWIN_REDFISH_USER", "FACTORY_TWIN_REDFISH_PASSWORD"
AUTH_MODES = ("session", "basic")


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)
    auth: str = "session"
    ca_file: Path | None = None
    client_cert: Path | None = None  # for services that also ask for a client certificate (mutual TLS)
    client_key: Path | None = None

    def ssl_context(self) -> ssl.SSLContext:
        """Verifying TLS context: the ``ca_file`` bundle, else the system's trust store (hostnames checked);
        with the client certificate when one is given."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if self.client_cert is not None:
            ctx.load_cert_chain(str(self.client_cert), str(self.client_key) if self.client_key else None)
        return ctx


def load_credentials(path: Path | None, option: str = "--credentials") -> Credentials:
    """Read a credentials file (format in the module docstring), or the environment when ``path`` is None;
    ``ValueError`` naming ``option`` and the key."""
    if path is None:
        user, pw = os.environ.get(USER_ENV), os.environ.get(PASSWORD_ENV)
        if not user or not pw:
            raise ValueError(f"{option}: give a credentials file, or set ${USER_ENV} and ${PASSWORD_ENV}")
        return Credentials(user, pw)
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{option}: no such file {p}")
    if p.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        warnings.warn(f"{option}: {p} is readable by other users; chmod 600 it", stacklevel=2)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{option}: {p} is not valid TOML ({e})") from None
    extra = sorted(set(raw) - {"username", "password", "auth", "ca_file"})
    if extra:
        raise ValueError(f"{option}: {p}: unknown key(s) {extra}; expected username, password, auth, ca_file")
    user, pw, auth = raw.get("username"), raw.get("password"), raw.get("auth", "session")
    if not isinstance(user, str) or not user or ":" in user:
        raise ValueError(f"{option}: {p}: username must be a non-empty string without ':'")
    if not isinstance(pw, str) or not pw:
        raise ValueError(f"{option}: {p}: password must be a non-empty string")
    if auth not in AUTH_MODES:
        raise ValueError(f"{option}: {p}: auth must be one of {', '.join(AUTH_MODES)}, got {auth!r}")
    ca = raw.get("ca_file")
    ca_path = None
    if ca is not None:
        if not isinstance(ca, str):
            raise ValueError(f"{option}: {p}: ca_file must be a path")
        ca_path = Path(ca) if Path(ca).is_absolute() else p.parent / ca
        if not ca_path.is_file():
            raise FileNotFoundError(f"{option}: {p}: ca_file {ca_path} does not exist")
    return Credentials(user, pw, auth, ca_path)


__all__ = ["AUTH_MODES", "PASSWORD_ENV", "USER_ENV", "Credentials", "load_credentials"]
