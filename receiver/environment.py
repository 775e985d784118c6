"""The app built from the configuration file named in the environment: what each process
of a multi-process receiver (`receiver.workers > 1`) imports by name."""

from __future__ import annotations

import os
from typing import Final

from starlette.applications import Starlette

from receiver.app import create_app
from schemas.config import CONFIG_ENV, load_settings

FACTORY: Final = "receiver:app_from_environment"


def app_from_environment() -> Starlette:
    return create_app(load_settings(os.environ.get(CONFIG_ENV, "orgstream.toml")))
