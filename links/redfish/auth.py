"""Accounts, sessions and privileges of the emulated Redfish service (DSP0266 "Security details").

Accounts come from a TOML file the operator writes (never from the network)::

    [[accounts]]
    username = "steer"
    password = "a long random string"
    role = "Operator"          # Administrator | Operator | ReadOnly

Roles carry the Redfish predefined privileges: ReadOnly may read (``Login``) and end its own session
(``ConfigureSelf``); Operator may also write power limits (``ConfigureComponents``); Administrator may also
read every session and change the session timeout (``ConfigureManager``).

Clients authenticate with HTTP Basic or with a session (``POST`` the Sessions collection, then send the
``X-Auth-Token`` the service returns; no cookies). Tokens are 256-bit random values; only their SHA-256 is kept.
A session closes after ``timeout_s`` without a request on it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROLES: dict[str, frozenset[str]] = {
    "ReadOnly": frozenset({"Login", "ConfigureSelf"}),
    "Operator": frozenset({"Login", "ConfigureSelf", "ConfigureComponents"}),
    "Administrator": frozenset({"Login", "ConfigureSelf", "ConfigureComponents", "ConfigureManager", "ConfigureUsers"}),
}
SESSION_TIMEOUT_S = (30, 86400)  # SessionService.SessionTimeout bounds in the schema (Validation.Minimum/Maximum)


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


@dataclass(frozen=True)
class Account:
    username: str
    password_digest: bytes = field(repr=False)
    role: str

    def privileges(self) -> frozenset[str]:
        return ROLES[self.role]


def load_accounts(path: Path, option: str = "--accounts") -> dict[str, Account]:
    """Read the accounts TOML (format in the module docstring); ``ValueError`` naming ``option`` and the entry."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{option}: no such file {p}")
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{option}: {p} is not valid TOML ({e})") from None
    entries = raw.get("accounts")
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{option}: {p} needs at least one [[accounts]] table (username, password, role)")
    accounts: dict[str, Account] = {}
    for i, e in enumerate(entries):
        where = f"{option}: {p} accounts[{i}]"
        if not isinstance(e, dict) or set(e) - {"username", "password", "role"}:
            raise ValueError(f"{where}: expected the keys username, password and role")
        user, pw, role = e.get("username"), e.get("password"), e.get("role", "ReadOnly")
        if not isinstance(user, str) or not user or ":" in user:
            raise ValueError(f"{where}.username: a non-empty name without ':' is required")
        if not isinstance(pw, str) or len(pw) < 8:
            raise ValueError(f"{where}.password: at least 8 characters are required")
        if role not in ROLES:
            raise ValueError(f"{where}.role: expected one of {', '.join(ROLES)}, got {role!r}")
        if user in accounts:
            raise ValueError(f"{where}.username: {user!r} appears twice")
        accounts[user] = Account(user, _digest(pw), role)
    return accounts


@dataclass
class Session:
    id: str
    account: Account
    token_digest: bytes = field(repr=False)
    created: float  # monotonic clock
    last_used: float
    created_wall: float  # seconds since the epoch, for the resource's CreatedTime


@dataclass(frozen=True)
class Principal:
    """Who made a request: the account and the session it came through (``None`` for Basic)."""

    account: Account
    session: Session | None

    @property
    def key(self) -> str:
        """Identifies the principal across requests: ``session:<id>`` or ``basic:<user>``."""
        return f"session:{self.session.id}" if self.session else f"basic:{self.account.username}"


class AuthError(Exception):
    """Credentials missing, wrong or expired."""


class SessionStore:
    """Accounts and live sessions; thread-safe."""

    def __init__(self, accounts: dict[str, Account], timeout_s: float = 600.0, max_sessions: int = 64) -> None:
        lo, hi = SESSION_TIMEOUT_S
        if not lo <= timeout_s <= hi:
            raise ValueError(f"session timeout: must be within [{lo}, {hi}] s, got {timeout_s:g}")
        self.accounts = accounts
        self.timeout_s = float(timeout_s)
        self.max_sessions = max_sessions
        self._by_token: dict[bytes, Session] = {}
        self._lock = threading.Lock()
        self.on_close: list = []  # callbacks(session) when a session is deleted or expires

    def check_password(self, username: object, password: object) -> Account | None:
        """The account when the pair is right (constant-time comparison of digests), else ``None``."""
        if not isinstance(username, str) or not isinstance(password, str):
            return None
        acc = self.accounts.get(username)
        ok = hmac.compare_digest(acc.password_digest if acc else _digest(secrets.token_hex(8)), _digest(password))
        return acc if acc and ok else None

    def create(self, account: Account) -> tuple[Session, str] | None:
        """A new session and its token; ``None`` at the session limit."""
        self.expire()
        token = secrets.token_urlsafe(32)
        now = time.monotonic()
        s = Session(secrets.token_hex(8), account, _digest(token), now, now, time.time())
        with self._lock:
            if len(self._by_token) >= self.max_sessions:
                return None
            self._by_token[s.token_digest] = s
        return s, token

    def sessions(self) -> list[Session]:
        self.expire()
        with self._lock:
            return sorted(self._by_token.values(), key=lambda s: s.created)

    def find(self, session_id: str) -> Session | None:
        return next((s for s in self.sessions() if s.id == session_id), None)

    def delete(self, session: Session) -> bool:
        with self._lock:
            gone = self._by_token.pop(session.token_digest, None) is not None
        if gone:
            for cb in self.on_close:
                cb(session)
        return gone

    def expire(self) -> None:
        """Close sessions idle for longer than the timeout."""
        now = time.monotonic()
        with self._lock:
            old = [s for s in self._by_token.values() if now - s.last_used > self.timeout_s]
        for s in old:
            self.delete(s)

    def authenticate(self, token: str | None, authorization: str | None) -> Principal:
        """The principal of a request from its ``X-Auth-Token`` or ``Authorization: Basic`` header.

        Raises :class:`AuthError` when neither is given or the one given is wrong or expired (the token wins
        when both are sent)."""
        if token:
            with self._lock:
                s = self._by_token.get(_digest(token))
            now = time.monotonic()
            if s is None or now - s.last_used > self.timeout_s:
                if s is not None:
                    self.delete(s)
                raise AuthError("no valid session")
            s.last_used = now
            return Principal(s.account, s)
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() != "basic":
                raise AuthError("unsupported authorization scheme")
            try:
                user, _, pw = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                raise AuthError("malformed Basic credentials") from None
            acc = self.check_password(user, pw)
            if acc is None:
                raise AuthError("wrong user name or password")
            return Principal(acc, None)
        raise AuthError("no credentials")


__all__ = ["ROLES", "Account", "AuthError", "Principal", "Session", "SessionStore", "load_accounts"]
