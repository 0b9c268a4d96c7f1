"""The `hub-receiver` command: argument parsing (`main`), printing (`views`), argument types."""

from receiver.cli.main import main

__all__ = ["main"]
