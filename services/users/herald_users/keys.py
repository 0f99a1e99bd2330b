"""The token signing key: from configuration, or generated once for local development."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from herald_common.auth import generate_private_key_pem

from herald_users.config import UsersSettings

log = logging.getLogger(__name__)


class SigningKeyError(RuntimeError):
    """The configured signing key is missing or unusable; the service cannot start."""


def _check_rsa(pem: str, origin: str) -> str:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{origin}: not an unencrypted PEM private key ({exc})") from exc
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
        raise SigningKeyError(f"{origin}: an RSA private key of at least 2048 bits is required")
    return pem


def _generate_local(path: Path) -> str:
    """Create the local key atomically (two processes starting at once get the same key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = generate_private_key_pem()
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(pem)
    try:
        os.link(tmp, path)  # fails if another process won the race: use its key
        log.info("generated a local token signing key", extra={"path": str(path)})
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text()


def load_private_key(settings: UsersSettings) -> str:
    """The PEM private key to sign tokens with."""
    if settings.private_key_pem is not None:
        return _check_rsa(settings.private_key_pem.get_secret_value(), "private_key_pem")
    if settings.private_key_file is not None:
        try:
            pem = settings.private_key_file.read_text()
        except OSError as exc:
            raise SigningKeyError(f"private_key_file: cannot read it ({exc})") from exc
        return _check_rsa(pem, f"private_key_file {settings.private_key_file}")
    if settings.environment == "production":  # also refused by UsersSettings
        raise SigningKeyError("production needs private_key_pem or private_key_file")
    path = settings.local_key_file
    if path.exists():
        return _check_rsa(path.read_text(), f"local key {path}")
    return _check_rsa(_generate_local(path), f"local key {path}")
