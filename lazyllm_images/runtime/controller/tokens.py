"""The API tokens. Each token is a secret and an owner: a client sees only the records made with its token.

The token file holds one token a line (blank lines and ``#`` comments skipped). A missing file is created with
one generated token (mode 0600): the operator reads it from there; the controller never prints or logs it. Only
SHA-256 digests are kept in memory, and a token is checked against every digest in constant time. The owner id
stored with a record is a digest prefix, which says nothing about the token.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

MIN_LENGTH = 16
TOKEN_HEADER = "token"                     # upstream's header; ``Authorization: Bearer`` works too


class TokenError(ValueError):
    """The token file cannot be used; the message says why (never what a token is)."""


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def owner_id(digest: bytes) -> str:
    return digest.hex()[:32]


class TokenRing:
    def __init__(self, tokens: list[str]) -> None:
        if not tokens:
            raise TokenError("no token: the controller would refuse every request")
        self._digests = [_digest(t) for t in tokens]

    def __len__(self) -> int:
        return len(self._digests)

    def owner_of(self, given: str | None) -> str | None:
        """The owner id of GIVEN, or None. Every digest is compared (no early exit), each in constant time."""
        if not given:
            return None
        digest = _digest(given.strip())
        found = None
        for known in self._digests:
            if hmac.compare_digest(digest, known):
                found = known
        return owner_id(found) if found is not None else None


def read_tokens(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeError) as exc:
        raise TokenError(f"cannot read the token file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    tokens = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if any(c.isspace() for c in line):
            raise TokenError(f"{path} line {number}: one token a line, no spaces")
        if len(line) < MIN_LENGTH:
            raise TokenError(f"{path} line {number}: a token must have at least {MIN_LENGTH} characters "
                             "(generate one: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')")
        tokens.append(line)
    if not tokens:
        raise TokenError(f"the token file {path} holds no token")
    return tokens


def generate_into(path: Path) -> str:
    """A new token written to PATH (created 0600, never overwritten)."""
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise TokenError(f"cannot create the token file {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(token + "\n")
    return token


def load(path: str | os.PathLike) -> tuple[TokenRing, bool]:
    """The ring from PATH, made with one generated token when PATH is missing; and whether it was generated."""
    path = Path(path)
    if not path.exists():
        generate_into(path)
        return TokenRing(read_tokens(path)), True
    return TokenRing(read_tokens(path)), False


def from_headers(headers) -> str | None:
    """The token a request carries: upstream's ``token`` header, else ``Authorization: Bearer``."""
    given = headers.get(TOKEN_HEADER)
    if given:
        return given
    auth = headers.get("authorization") or ""
    return auth[7:].strip() if auth[:7].lower() == "bearer " else None
