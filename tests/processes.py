"""Helpers for the tests that start real processes (servers, qclusters, make run)."""

from __future__ import annotations

import os
import signal
import subprocess


def kill_process_group(process: subprocess.Popen, *, timeout: float = 10) -> None:
    """SIGKILL the process's whole group (a qcluster's guard, workers, monitor and pusher) and
    reap it; a process already gone is fine."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
