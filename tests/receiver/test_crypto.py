"""The shared WeCom/DingTalk crypto scheme against the vendors' published and SDK vectors."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.config import CallbackKey, Secret, decode_aes_key
from schemas.vendors import crypto
from schemas.vendors.errors import (
    DecryptFailed,
    MalformedCiphertext,
    ReceiveIdMismatch,
    SignatureMismatch,
)
from tests.vectors import load_vectors
from tests.vectors import request_body as body_of

WECOM = load_vectors("wecom")
PUBLISHED_GET = WECOM["vendor_published_vectors"][0]
KEY = decode_aes_key(WECOM["config"]["encoding_aes_key"])
CORP = WECOM["config"]["corp_id"]


def encrypt_field(vector: dict[str, Any]) -> str:
    body = body_of(vector).decode()
    return body.split("<Encrypt><![CDATA[")[1].split("]]>")[0]


def test_published_vector_signature_and_plaintext() -> None:
    """The known-answer vector from WeCom's own documentation (加解密方案说明)."""
    config, query = PUBLISHED_GET["config"], PUBLISHED_GET["request"]["query"]
    assert (
        crypto.signature(config["token"], query["timestamp"], query["nonce"], query["echostr"])
        == query["msg_signature"]
    )
    key = decode_aes_key(config["encoding_aes_key"])
    plain = crypto.decrypt(key, query["echostr"], config["corp_id"])
    assert plain.decode() == PUBLISHED_GET["plaintext"]


@pytest.mark.parametrize(
    "vector", [v for v in WECOM["positive"] if v["kind"] == "event"], ids=lambda v: v["id"]
)
def test_encrypt_reproduces_the_sdk_ciphertext(vector: dict[str, Any]) -> None:
    """With the same random prefix our encrypt() is bit-identical to the SDK's (the simulator
    relies on this to sign and encrypt exactly as WeCom does)."""
    encrypted = encrypt_field(vector)
    prefix = crypto.random_prefix_of(KEY, encrypted)
    again = crypto.encrypt(KEY, vector["plaintext"].encode(), CORP, random_prefix=prefix)
    assert again == encrypted


def test_message_length_counts_bytes_not_characters() -> None:
    name = "𠮷强"  # 4-byte UTF-8 first character
    cipher = crypto.encrypt(KEY, name.encode(), CORP)
    assert crypto.decrypt(KEY, cipher, CORP).decode() == name


def test_signature_mismatch_is_detected() -> None:
    keys = (CallbackKey(Secret("token"), KEY),)
    cipher = crypto.encrypt(KEY, b"abc", CORP)
    sig = crypto.signature("token", "1", "2", cipher)
    assert crypto.open_signed(keys, "1", "2", cipher, sig, CORP, lambda: None)[1] == b"abc"
    with pytest.raises(SignatureMismatch):
        crypto.open_signed(keys, "1", "2", cipher + "=", sig, CORP, lambda: None)


def test_a_rotated_aes_key_with_the_same_token_still_opens_old_callbacks() -> None:
    """Only the AES key rotated: both keys share the token, and the one that decrypts wins."""
    old = b"o" * 32
    keys = (CallbackKey(Secret("token"), KEY), CallbackKey(Secret("token"), old))
    for key in (KEY, old):
        cipher = crypto.encrypt(key, b"abc", CORP)
        sig = crypto.signature("token", "1", "2", cipher)
        opened, message = crypto.open_signed(keys, "1", "2", cipher, sig, CORP, lambda: None)
        assert (opened.aes_key, message) == (key, b"abc")


@pytest.mark.parametrize(
    ("ciphertext", "error"),
    [
        ("not base64!", MalformedCiphertext),
        ("QUJD", MalformedCiphertext),  # 3 bytes: not whole AES blocks
        ("AAAA" * 8 + "AAA=", MalformedCiphertext),  # strict base64 refuses stray padding
    ],
)
def test_malformed_ciphertext_is_refused(ciphertext: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        crypto.decrypt(KEY, ciphertext, CORP)


def test_foreign_receive_id_is_refused() -> None:
    cipher = crypto.encrypt(KEY, b"<xml/>", "ww-someone-else")
    with pytest.raises(ReceiveIdMismatch):
        crypto.decrypt(KEY, cipher, CORP)


def test_bad_padding_and_bad_length_are_decrypt_failures() -> None:
    import base64

    from Crypto.Cipher import AES

    def seal(plain: bytes) -> str:
        return base64.b64encode(AES.new(KEY, AES.MODE_CBC, iv=KEY[:16]).encrypt(plain)).decode()

    zero_pad = b"\x00" * 32  # pad byte 0 is outside 1..32
    with pytest.raises(DecryptFailed):
        crypto.decrypt(KEY, seal(zero_pad), CORP)
    too_long = b"r" * 16 + (10_000).to_bytes(4, "big") + b"x" * 11 + b"\x01"  # msg_len > data
    with pytest.raises(DecryptFailed):
        crypto.decrypt(KEY, seal(too_long), CORP)
