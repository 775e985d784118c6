"""The command line: the only part of orgstream that hosts both the receiver and the workers."""

from workers.cli.main import main

__all__ = ["main"]
