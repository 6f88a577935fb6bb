"""Small network helpers for the commands that start processes (make run, the benchmarks)."""

from __future__ import annotations

import socket


def port_answers(port: int, host: str = "127.0.0.1") -> bool:
    """Something accepts connections on the port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
