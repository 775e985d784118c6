"""Callbacks made by hand, signed and encrypted as the vendors do, for the edge's tests: any
plaintext, any ciphertext, any key, so a test can send exactly the malformed thing it means."""

from __future__ import annotations

import base64
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson
from Crypto.Cipher import AES
from starlette.testclient import TestClient

from receiver import create_app
from receiver.publisher import MemoryEventPublisher
from schemas.config import Settings, decode_aes_key, parse_settings
from schemas.vendors import crypto

_ALPHANUMERIC = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def new_aes_key() -> str:
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(43))


@dataclass
class Keys:
    """One vendor console's callback token and EncodingAESKey."""

    token: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    encoding_aes_key: str = field(default_factory=new_aes_key)

    @property
    def aes_key(self) -> bytes:
        return decode_aes_key(self.encoding_aes_key)


@dataclass
class Tenant:
    """A WeCom tenant `acme` and a DingTalk tenant `beta`, with the keys they sign with."""

    keys: Keys = field(default_factory=Keys)
    corp_id: str = "ww0123456789abcdef"
    app_key: str = "dingappkey0123"
    previous: Keys | None = None

    def settings(self, **receiver: Any) -> Settings:
        def table(vendor: str) -> dict[str, Any]:
            key_name = "encoding_aes_key" if vendor == "wecom" else "aes_key"
            entry: dict[str, Any] = {
                "id": "acme" if vendor == "wecom" else "beta",
                "vendor": vendor,
                "corp_id": self.corp_id,
                "callback_token": self.keys.token,
                key_name: self.keys.encoding_aes_key,
            }
            if vendor == "dingtalk":
                entry["app_key"] = self.app_key
            if self.previous is not None:
                entry["previous_callback_token"] = self.previous.token
                entry[f"previous_{key_name}"] = self.previous.encoding_aes_key
            return entry

        raw = {"tenants": [table("wecom"), table("dingtalk")], "receiver": receiver}
        return parse_settings(raw, environ={})

    def client(self, **receiver: Any) -> tuple[TestClient, MemoryEventPublisher]:
        publisher = MemoryEventPublisher()
        app = create_app(self.settings(**receiver), publisher=publisher)
        return TestClient(app, raise_server_exceptions=False), publisher


def wecom_post(
    keys: Keys,
    corp_id: str,
    plaintext: bytes | None = None,
    encrypt: str | None = None,
    envelope: str = "<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>",
    timestamp: str | None = None,
) -> tuple[str, bytes]:
    """The query string and body of a WeCom POST: `plaintext` encrypted for `corp_id`, or a
    given `encrypt` as it is; signed with `keys.token` either way."""
    if encrypt is None:
        assert plaintext is not None
        encrypt = crypto.encrypt(keys.aes_key, plaintext, corp_id)
    timestamp = timestamp or str(int(time.time()))
    nonce = str(int.from_bytes(os.urandom(4), "big"))
    signature = crypto.signature(keys.token, timestamp, nonce, encrypt)
    query = f"msg_signature={signature}&timestamp={timestamp}&nonce={nonce}"
    return query, envelope.format(encrypt=encrypt).encode()


def wecom_handshake(keys: Keys, echostr: str) -> str:
    """The query string of a WeCom GET handshake carrying `echostr` as it is."""
    timestamp, nonce = str(int(time.time())), str(int.from_bytes(os.urandom(4), "big"))
    signature = crypto.signature(keys.token, timestamp, nonce, echostr)
    return (
        f"msg_signature={signature}&timestamp={timestamp}&nonce={nonce}"
        f"&echostr={quote(echostr, safe='')}"
    )


def dingtalk_post(keys: Keys, owner_key: str, fields: dict[str, Any]) -> tuple[str, bytes]:
    encrypt = crypto.encrypt(keys.aes_key, orjson.dumps(fields), owner_key)
    timestamp, nonce = str(int(time.time() * 1000)), secrets.token_hex(4)
    signature = crypto.signature(keys.token, timestamp, nonce, encrypt)
    query = f"signature={signature}&timestamp={timestamp}&nonce={nonce}"
    return query, orjson.dumps({"encrypt": encrypt})


def contact_xml(change_type: str, **fields: str) -> bytes:
    parts = "".join(f"<{name}><![CDATA[{value}]]></{name}>" for name, value in fields.items())
    return (
        "<xml><ToUserName><![CDATA[ww0123456789abcdef]]></ToUserName>"
        "<CreateTime>1767225600</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[change_contact]]></Event><ChangeType>{change_type}</ChangeType>"
        f"{parts}</xml>"
    ).encode()


def with_block_appended(keys: Keys, encrypt: str, block: bytes) -> str:
    """The ciphertext with one more (chosen) block: what a padding-oracle attack sends."""
    return base64.b64encode(base64.b64decode(encrypt) + block).decode()


def with_bad_padding(keys: Keys, encrypt: str) -> str:
    """The ciphertext with one more block chosen so that the padding is invalid for sure (a
    random block would decrypt to valid padding one time in a few hundred)."""
    ciphertext = base64.b64decode(encrypt)
    for filler in range(256):
        block = bytes([filler]) * 16
        decrypted = AES.new(keys.aes_key, AES.MODE_ECB).decrypt(block)
        last = decrypted[-1] ^ ciphertext[-1]  # CBC: the block before is XORed in
        if last == 0 or last > 32:  # WeCom pads to 32 bytes: 1..32 would be valid
            return with_block_appended(keys, encrypt, block)
    raise AssertionError("no block gives invalid padding")
