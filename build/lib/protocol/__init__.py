"""The refnode protocol, version 1: pure code, no I/O. See docs/protocol.md."""
