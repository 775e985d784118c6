"""The callback receiver: verify, decrypt, normalize, publish, then answer the vendor."""

from receiver.app import create_app

__all__ = ["create_app"]
