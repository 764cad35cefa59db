"""An agent's key: P-256, kept in a PEM file only its owner can read (0600)."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ._jose import check_key

MAX_KEY_FILE_BYTES = 64 * 1024


def generate_key() -> ec.EllipticCurvePrivateKey:
    """A new P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def save_key(key: ec.EllipticCurvePrivateKey, path: str | os.PathLike[str]) -> None:
    """Writes `key` as unencrypted PKCS#8 PEM to a new file created with mode 0600 (an existing file is not
    overwritten: FileExistsError)."""
    pem = check_key(key).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(os.fspath(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def load_key(path: str | os.PathLike[str]) -> ec.EllipticCurvePrivateKey:
    """Reads a P-256 private key (PEM, PKCS#8 or SEC1). Refuses a file others can read or write, and a file larger
    than any key."""
    st = os.stat(path)
    if st.st_mode & 0o077:
        raise PermissionError(f"{os.fspath(path)}: a key file must not be readable by others (chmod 600)")
    if st.st_size > MAX_KEY_FILE_BYTES:
        raise ValueError(f"{os.fspath(path)}: too large for a key file")
    with open(path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{os.fspath(path)}: not an EC private key")
    return check_key(key)
