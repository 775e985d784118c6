"""The WeCom / DingTalk callback crypto scheme (docs/vendors.md §0), pure and stateless.

AES-256-CBC, IV = key[:16], PKCS#7 padding to 32 bytes, plaintext framed as
random(16) | msg_len(4, big-endian, bytes) | msg | receive_id. Integrity rests on the SHA-1
signature alone (there is no MAC), so callers verify it before calling `decrypt`.

CBC decryption is done as one ECB pass over all blocks and one XOR with the ciphertext shifted
by a block: the same result, with the key schedule made once per key (an ECB cipher keeps no
state between calls) instead of once per callback.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import hashlib
import hmac
import os
from collections.abc import Callable, Sequence
from typing import Any

from Crypto.Cipher import AES

from schemas.config import CallbackKey
from schemas.vendors.errors import (
    DecryptFailed,
    MalformedCiphertext,
    ReceiveIdMismatch,
    SignatureMismatch,
)

_BLOCK = 32  # the vendors pad to 32 bytes, not AES's 16
_PREFIX = 16 + 4


def signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """sha1 over the four strings sorted and concatenated, lowercase hex."""
    return hashlib.sha1("".join(sorted((token, timestamp, nonce, encrypt))).encode()).hexdigest()


def open_signed(
    keys: Sequence[CallbackKey],
    timestamp: str,
    nonce: str,
    encrypt: str,
    given: str,
    receive_id: str,
    check_window: Callable[[], None],
) -> tuple[CallbackKey, bytes]:
    """The key that opens the request, and the message: a key whose token signed it (each
    comparison constant-time) and whose AES key decrypts it. While a rotation lasts there are
    two keys, which may share a token (only the AES key rotated). The timestamp window is
    checked once a signature holds, before anything is decrypted."""
    presented = given.lower().encode("utf-8", "replace")
    signed = [
        key
        for key in keys
        if hmac.compare_digest(
            signature(key.token.reveal(), timestamp, nonce, encrypt).encode(), presented
        )
    ]
    if not signed:
        raise SignatureMismatch
    check_window()
    for key in signed[:-1]:
        with contextlib.suppress(DecryptFailed):
            return key, decrypt(key.aes_key, encrypt, receive_id)
    return signed[-1], decrypt(signed[-1].aes_key, encrypt, receive_id)


def decrypt(aes_key: bytes, encrypt: str, receive_id: str) -> bytes:
    """Return the message bytes (valid UTF-8); every failure is a `DecryptFailed`."""
    try:
        data = base64.b64decode(encrypt, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedCiphertext from exc
    if not data or len(data) % AES.block_size:
        raise MalformedCiphertext
    plain = _cbc_decrypt(aes_key, data)
    pad = plain[-1]
    if not 1 <= pad <= _BLOCK or pad > len(plain) or plain[-pad:] != bytes([pad]) * pad:
        raise DecryptFailed
    framed = plain[:-pad]
    if len(framed) < _PREFIX:
        raise DecryptFailed
    msg_len = int.from_bytes(framed[16:_PREFIX], "big")
    if _PREFIX + msg_len > len(framed):
        raise DecryptFailed
    msg, tail = framed[_PREFIX : _PREFIX + msg_len], framed[_PREFIX + msg_len :]
    try:
        msg.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecryptFailed from exc
    if not hmac.compare_digest(tail, receive_id.encode()):
        raise ReceiveIdMismatch
    return msg


def encrypt(aes_key: bytes, msg: bytes, receive_id: str, random_prefix: bytes | None = None) -> str:
    """The vendor's encryption, used for DingTalk replies and by the test simulator."""
    prefix = os.urandom(16) if random_prefix is None else random_prefix
    framed = prefix + len(msg).to_bytes(4, "big") + msg + receive_id.encode()
    pad = _BLOCK - len(framed) % _BLOCK
    padded = framed + bytes([pad]) * pad
    cipher = AES.new(aes_key, AES.MODE_CBC, iv=aes_key[:16])
    return base64.b64encode(cipher.encrypt(padded)).decode("ascii")


@functools.lru_cache(maxsize=1024)
def encrypted_success(aes_key: bytes, receive_id: str) -> str:
    """`success` encrypted for a receiver, made once per key: DingTalk's reply to every
    callback. Its random prefix is one per key rather than one per reply, which tells nothing:
    the text is public, and each reply's signature is fresh."""
    return encrypt(aes_key, b"success", receive_id)


@functools.lru_cache(maxsize=1024)
def _block_cipher(aes_key: bytes) -> Any:
    return AES.new(aes_key, AES.MODE_ECB)


def _cbc_decrypt(aes_key: bytes, data: bytes) -> bytes:
    blocks = _block_cipher(aes_key).decrypt(data)
    chained = aes_key[:16] + data[:-16]  # what each block is XORed with: the IV, then C[i-1]
    plain = int.from_bytes(blocks, "big") ^ int.from_bytes(chained, "big")
    return plain.to_bytes(len(data), "big")


def random_prefix_of(aes_key: bytes, encrypt_b64: str) -> bytes:
    """The 16 random bytes a ciphertext starts with (lets tests re-encrypt bit for bit)."""
    data = base64.b64decode(encrypt_b64, validate=True)
    return AES.new(aes_key, AES.MODE_CBC, iv=aes_key[:16]).decrypt(data[:16])
