"""`manage.py run_demo`: what `make run` runs.

Migrates, runs `bootstrap_demo`, then runs three child processes with the same environment: the
web server (gunicorn, 2 workers x 4 threads, on 127.0.0.1:$PORT), the issuance workers
(`manage.py qcluster`) and the webhook workers (`Q_CLUSTER_NAME=webhooks manage.py qcluster`,
django-q2's second cluster, so that a slow partner endpoint never holds an issuance worker).
Ctrl-C or SIGTERM stops them all; if one dies, the others are stopped and the command exits
non-zero.

Each child runs in its own process group, so that a Ctrl-C reaches only this command, which
stops the children in order with SIGTERM (a child still importing Django would otherwise print a
KeyboardInterrupt traceback), and so that whatever a child leaves behind can be killed as a group.
On Linux each child also gets SIGTERM if this command dies without cleaning up.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from channel_manager.kernel.net import port_answers

# How long the children get to stop after a signal before they are killed.
STOP_TIMEOUT_SECONDS = 8.0
READY_TIMEOUT_SECONDS = 60.0


def demo_wsgi_application():
    """The WSGI app, also serving static files (admin, API docs) since no web server is in
    front of gunicorn here. Gunicorn calls this factory: `run_demo:demo_wsgi_application()`."""
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.wsgi import get_wsgi_application

    return StaticFilesHandler(get_wsgi_application())


PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: have the kernel send SIGTERM to this child when run_demo dies."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True



class Command(BaseCommand):
    help = (
        "Migrate, load the demo data (bootstrap_demo) and serve the API on 127.0.0.1:$PORT "
        "together with the issuance and the webhook workers (two qclusters). Ctrl-C stops them all."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000))

    def handle(self, *args, port: int, **options) -> None:
        if not 0 < port < 65536:
            raise CommandError(f"Invalid port {port}.")
        if not port_is_free(port):
            raise CommandError(f"Port {port} on 127.0.0.1 is in use; choose another: PORT=8001 ...")

        database = settings.DATABASES["default"]
        if database["ENGINE"] == "django.db.backends.sqlite3":
            Path(database["NAME"]).parent.mkdir(parents=True, exist_ok=True)
            where = f"SQLite {database['NAME']}"
        else:
            where = f"{database['ENGINE'].rsplit('.', 1)[-1]} database {database.get('NAME')}"
        self.stdout.write(f"Database: {where}")

        call_command("migrate", interactive=False, verbosity=0)
        call_command("bootstrap_demo", port=str(port), stdout=self.stdout, stderr=self.stderr)
        connections.close_all()

        env = os.environ.copy()
        env["PORT"] = str(port)
        env.setdefault("PUBLIC_BASE_URL", f"http://127.0.0.1:{port}")
        env.setdefault("DJANGO_SETTINGS_MODULE", "channel_manager.settings")
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.pop("Q_CLUSTER_NAME", None)  # each qcluster is told which queue it serves below
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        commands = {
            "web server (gunicorn)": [
                sys.executable, "-m", "gunicorn",
                "channel_manager.management.commands.run_demo:demo_wsgi_application()",
                "--bind", f"127.0.0.1:{port}",
                "--workers", "2",
                "--threads", "4",
                "--graceful-timeout", "5",
                # No gunicorn access log: the app logs one line per request itself, with
                # manifest tokens and query strings redacted.
                "--log-level", "warning",
            ],
            "issuance workers (qcluster)": [sys.executable, manage, "qcluster"],
            "webhook workers (qcluster)": [sys.executable, manage, "qcluster"],
        }
        child_env = {"webhook workers (qcluster)": {**env, "Q_CLUSTER_NAME": settings.WEBHOOK_QUEUE}}
        self.stop_signal: int | None = None
        previous = {
            sig: signal.signal(sig, self.on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        children: dict[str, subprocess.Popen] = {}
        try:
            for name, argv in commands.items():
                children[name] = subprocess.Popen(
                    argv,
                    env=child_env.get(name, env),
                    cwd=settings.BASE_DIR,
                    stdin=subprocess.DEVNULL,
                    process_group=0,
                    preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
                )
            failed = self.supervise(children, port)
        finally:
            self.stop(children)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if failed:
            raise CommandError(failed)
        self.stdout.write("Stopped.")

    def on_signal(self, signum: int, frame) -> None:
        self.stop_signal = signum

    def supervise(self, children: dict[str, subprocess.Popen], port: int) -> str | None:
        """Wait until a signal arrives (None) or a child dies (a message)."""
        started = time.monotonic()
        ready = False
        while self.stop_signal is None:
            for name, child in children.items():
                code = child.poll()
                if code is not None:
                    return f"The {name} exited with status {code}."
            if not ready:
                if port_answers(port):
                    ready = True
                    self.stdout.write(
                        f"Serving the partner API on http://127.0.0.1:{port}/channelManager "
                        f"(docs: http://127.0.0.1:{port}/api/docs/, admin: http://127.0.0.1:{port}/admin/), "
                        "with the issuance and webhook workers. "
                        "Press Ctrl-C to stop."
                    )
                    self.stdout.flush()
                elif time.monotonic() - started > READY_TIMEOUT_SECONDS:
                    return (
                        f"The web server did not answer on port {port} "
                        f"within {READY_TIMEOUT_SECONDS:.0f} s."
                    )
            time.sleep(0.2)
        return None

    def stop(self, children: dict[str, subprocess.Popen]) -> None:
        """SIGTERM each child (which stops its own workers), wait, and kill what is left.

        The group of a child that already died is killed too, to end its orphans."""
        for child in children.values():
            if child.poll() is None:
                try:
                    child.terminate()
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for name, child in children.items():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"The {name} did not stop in time; killing it.")
                signal_group(child, signal.SIGKILL)
                child.wait()
        # Whatever is left in a group (a worker that outlived its master) is not wanted.
        for child in children.values():
            signal_group(child, signal.SIGKILL)


def signal_group(child: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(child.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
