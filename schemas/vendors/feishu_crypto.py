"""Feishu's callback crypto (docs/vendors.md §3.1), pure and stateless.

AES-256-CBC, key = SHA-256 of the app's encrypt key, the IV the first 16 bytes of the decoded
value, PKCS#7 over 16-byte blocks. The request signature is SHA-256 over timestamp + nonce +
encrypt key + the raw body bytes: whoever can sign can also encrypt, so the signature proves the
sender holds the key, and it is checked before anything is decrypted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from Crypto.Cipher import AES

from schemas.vendors.errors import DecryptFailed, MalformedCiphertext

_BLOCK = AES.block_size


def aes_key_of(encrypt_key: str) -> bytes:
    """The AES-256 key of an app's encrypt key."""
    return hashlib.sha256(encrypt_key.encode()).digest()


def signature(timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    digest = hashlib.sha256((timestamp + nonce + encrypt_key).encode())
    digest.update(body)
    return digest.hexdigest()


def signature_holds(given: str, timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> bool:
    """Compared in constant time, whatever `given` holds."""
    expected = signature(timestamp, nonce, encrypt_key, body).encode()
    return hmac.compare_digest(expected, given.lower().encode("utf-8", "replace"))


def decrypt(aes_key: bytes, encrypt: str) -> bytes:
    """The plaintext (valid UTF-8). Not base64 or not IV + whole blocks: `MalformedCiphertext`;
    bad padding or not UTF-8: `DecryptFailed`. Callers verify the signature first."""
    try:
        data = base64.b64decode(encrypt, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedCiphertext from exc
    if len(data) < 2 * _BLOCK or len(data) % _BLOCK:
        raise MalformedCiphertext
    plain = AES.new(aes_key, AES.MODE_CBC, iv=data[:_BLOCK]).decrypt(data[_BLOCK:])
    pad = plain[-1]
    if not 1 <= pad <= _BLOCK or plain[-pad:] != bytes([pad]) * pad:
        raise DecryptFailed
    message = plain[:-pad]
    try:
        message.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecryptFailed from exc
    return message


def encrypt(aes_key: bytes, plaintext: bytes, iv: bytes | None = None) -> str:
    """What Feishu sends as `encrypt`; used by the simulator and the tests."""
    iv = os.urandom(_BLOCK) if iv is None else iv
    pad = _BLOCK - len(plaintext) % _BLOCK
    cipher = AES.new(aes_key, AES.MODE_CBC, iv=iv)
    return base64.b64encode(iv + cipher.encrypt(plaintext + bytes([pad]) * pad)).decode("ascii")
