"""Why a callback was refused. One class per reason, each with its HTTP status.

    CallbackError
    ├── BadRequest           400 bad_request       required parameter missing or not a number
    ├── BodyTooLarge         413 body_too_large    over receiver.max_body_bytes
    ├── BodyTimeout          408 body_timeout      the body did not arrive within the deadline
    ├── UnknownTenant        404 unknown_tenant    no such tenant for this vendor
    ├── MalformedEnvelope    400 malformed         outer XML/JSON unreadable
    ├── SignatureMismatch    403 bad_signature     sha1 signature does not match
    ├── StaleTimestamp       403 stale_timestamp   outside receiver.timestamp_skew_seconds
    ├── BadToken             403 bad_token         Feishu: the verification token is not the app's
    └── DecryptFailed        400 decrypt_failed    any failure after the signature held:
        │                         (reason decrypt_failed)       padding, framing or UTF-8
        ├── MalformedCiphertext   (reason malformed)            not strict base64 / bad length
        ├── ReceiveIdMismatch     (reason receive_id_mismatch)  trailing id is not the tenant's
        ├── MalformedPlaintext    (reason malformed_plaintext)  decrypted, but not a callback
        └── BadEchostr            (reason bad_echostr)          a handshake whose echostr is not
                                                                a short alphanumeric string

`reason` is for the operator's log only. Everything reachable from outside, the reply, its
headers and the metrics, carries `public_reason`, which is `decrypt_failed` for every failure
after the signature held: whoever holds the callback token learns nothing about padding,
lengths, ids or plaintexts from us (no padding oracle, no decryption service). `vendor_code`
keeps the vendor SDK's number. Feishu's answers are more uniform still: every refusal is one
public answer (`schemas/vendors/feishu.py`).
"""

from __future__ import annotations

from typing import ClassVar


class CallbackError(Exception):
    http_status: ClassVar[int] = 400
    reason: ClassVar[str] = "bad_request"
    vendor_code: ClassVar[int | None] = None

    @property
    def public_reason(self) -> str:
        return self.reason


class BadRequest(CallbackError):
    pass


class BodyTooLarge(CallbackError):
    http_status = 413
    reason = "body_too_large"


class BodyTimeout(CallbackError):
    http_status = 408
    reason = "body_timeout"


class UnknownTenant(CallbackError):
    http_status = 404
    reason = "unknown_tenant"


class MalformedEnvelope(CallbackError):
    reason = "malformed"
    vendor_code = -40002


class SignatureMismatch(CallbackError):
    http_status = 403
    reason = "bad_signature"
    vendor_code = -40001


class StaleTimestamp(CallbackError):
    http_status = 403
    reason = "stale_timestamp"


class BadToken(CallbackError):
    http_status = 403
    reason = "bad_token"


class DecryptFailed(CallbackError):
    reason = "decrypt_failed"
    vendor_code = -40007

    @property
    def public_reason(self) -> str:
        return DecryptFailed.reason


class MalformedCiphertext(DecryptFailed):
    reason = "malformed"
    vendor_code = -40010


class ReceiveIdMismatch(DecryptFailed):
    reason = "receive_id_mismatch"
    vendor_code = -40005


class MalformedPlaintext(DecryptFailed):
    reason = "malformed_plaintext"
    vendor_code = -40008


class BadEchostr(DecryptFailed):
    reason = "bad_echostr"
