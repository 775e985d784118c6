"""The callback receiver: verify, decrypt, normalize, publish, then answer the vendor."""

from receiver.app import create_app
from receiver.environment import FACTORY, app_from_environment

__all__ = ["FACTORY", "app_from_environment", "create_app"]
