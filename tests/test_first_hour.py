"""The first hour on a fresh clone: `make run`, then every command of the README's "Management
commands" table, as written, in a second shell with no variable set; the demo's staff logins;
and a production start without SECRET_KEY, which refuses in one line.

Each test works on a fresh checkout in tmp_path (the files git tracks, nothing else: no var/,
no dev.env), never on the developer's own var/.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.processes import kill_process_group
from tests.test_newcomer_path import call, descendants, free_port

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 120.0
COMMAND_TIMEOUT = 120.0
# A shell as a newcomer opens it: none of the project's settings.
SETTINGS_VARIABLES = {
    "CM_DEV", "DEBUG", "SECRET_KEY", "DATABASE_URL", "SQLITE_PATH", "WEBHOOK_ALLOW_PRIVATE_TARGETS",
    "PUBLIC_BASE_URL", "PORT", "Q_CLUSTER_NAME", "Q_SITE_NAME", "DJANGO_SETTINGS_MODULE", "LOG_FORMAT",
    "PROMETHEUS_MULTIPROC_DIR", "PYTHONPATH", "VIRTUAL_ENV",
}


def clean_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in SETTINGS_VARIABLES}
    env.update(extra)
    return env


def fresh_checkout(dest: Path) -> Path:
    """The files git tracks, copied to `dest`, with the project's virtualenv linked in as .venv
    (as `make venv` would have made it)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    assert not (dest / "var").exists() and not list(dest.rglob("dev.env")), "nothing untracked is copied"
    (dest / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    return dest


def readme_commands(readme: Path) -> list[str]:
    """The first column of the README's "Management commands" table: commands as written."""
    text = readme.read_text(encoding="utf-8")
    section = text.split("\n## Management commands\n", 1)[1].split("\n## ", 1)[0]
    commands = [
        match.group(1)
        for match in re.finditer(r"^\| `([^`]+)` \|", section, flags=re.MULTILINE)
    ]
    return commands


def run(command: str | list[str], cwd: Path, **extra: str) -> subprocess.CompletedProcess:
    argv = shlex.split(command) if isinstance(command, str) else command
    return subprocess.run(argv, cwd=cwd, env=clean_env(**extra), capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT, stdin=subprocess.DEVNULL)


class MakeRun:
    """`make run` in the checkout, in its own process group, as a terminal runs it."""

    def __init__(self, checkout: Path) -> None:
        self.checkout = checkout
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = checkout.parent / "make-run.log"
        # The copied pyproject.toml is newer than the virtualenv's install stamp: -o keeps make
        # from reinstalling the project (into the shared virtualenv) from this checkout.
        stamp = ".venv/.installed"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                ["make", "-o", stamp, "run"], cwd=checkout, env=clean_env(PORT=str(self.port)),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until_serving(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while "Serving the partner API" not in self.output():
            if self.process.poll() is not None:
                pytest.fail(f"make run exited with {self.process.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                pytest.fail(f"make run did not serve within {READY_TIMEOUT} s:\n{self.output()}")
            time.sleep(0.25)

    def stop(self) -> None:
        """Ctrl-C, then whatever is left is killed."""
        children = descendants(self.process.pid)
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        for pid in children | descendants(self.process.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        kill_process_group(self.process)


@pytest.fixture(scope="module")
def make_run(tmp_path_factory):
    """One `make run` for the tests that only look at it (neither changes what the other sees)."""
    checkout = fresh_checkout(tmp_path_factory.mktemp("first-hour") / "checkout")
    started = MakeRun(checkout)
    try:
        started.wait_until_serving()
        yield started
    finally:
        started.stop()


def test_every_readme_command_works_as_written_in_a_second_shell_after_make_run(make_run):
    checkout = make_run.checkout
    dev_file = checkout / "var" / "dev.env"
    assert dev_file.is_file(), make_run.output()
    assert dev_file.stat().st_mode & 0o077 == 0, "the secret key is readable by its owner only"
    assert re.search(r"^SECRET_KEY=\S{40,}$", dev_file.read_text(), flags=re.MULTILINE)

    commands = readme_commands(checkout / "README.md")
    assert any(" create_partner " in command for command in commands), commands
    assert len(commands) >= 6, commands
    outputs = {}
    for command in commands:
        done = run(command, checkout)
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr, f"{command}\n{done.stderr}"
        outputs[command] = done.stdout

    created = next(out for command, out in outputs.items() if " create_partner " in command)
    partner = json.loads(created.strip().splitlines()[-1])
    assert partner["partnerId"] == "acme" and partner["apiKey"]
    device = next(out for command, out in outputs.items() if " create_gate_device " in command)
    assert json.loads(device.strip().splitlines()[-1])["token"]

    # The partner made in the second shell is the server's: its key works (and it was enabled again).
    status, _, items = call("GET", f"{make_run.base}/catalog/items", partner["apiKey"])
    assert status == 200, items


def test_make_run_prints_staff_logins_with_which_support_sees_the_demo_orders(make_run):
    output = make_run.output()
    logins_file = make_run.checkout / "var" / "demo_staff_logins"
    logins = dict(line.split() for line in logins_file.read_text().splitlines() if not line.startswith("#"))
    assert set(logins) == {"admin", "support", "finance"}
    assert f"{make_run.base}/admin/" in output
    for username, password in logins.items():
        assert re.search(rf"^\s+{username}\s+{re.escape(password)}\s", output, flags=re.MULTILINE), username

    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    login_url = f"{make_run.base}/admin/login/?next=/admin/channel_manager/order/"
    browser.open(login_url, timeout=30).read()
    csrf = next(cookie.value for cookie in jar if cookie.name == "csrftoken")
    form = urllib.parse.urlencode({"username": "support", "password": logins["support"],
                                   "csrfmiddlewaretoken": csrf, "next": "/admin/channel_manager/order/"})
    request = urllib.request.Request(login_url, data=form.encode(), headers={"Referer": login_url})
    with browser.open(request, timeout=30) as response:
        page = response.read().decode()
        assert response.url.endswith("/admin/channel_manager/order/"), page[:2000]
    for reference in ("DEMO-ERROR-1", "DEMO-DRAFT-1", "DEMO-ISSUED-1"):
        assert reference in page, reference
    assert "needs a visitTime" in page or "Error" in page


def test_production_without_secret_key_refuses_in_one_line(tmp_path):
    checkout = fresh_checkout(tmp_path / "checkout")
    done = run(".venv/bin/python manage.py check", checkout)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "SECRET_KEY" in lines[0], done.stderr

    served = run([".venv/bin/python", "-m", "gunicorn", "-c", "channel_manager/deploy/gunicorn.conf.py",
                  "--bind", "127.0.0.1:0", "--workers", "1"], checkout,
                 PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"))
    assert served.returncode != 0, "gunicorn stops instead of booting workers again and again"
    assert "Traceback" not in served.stderr, served.stderr
    ours = [line for line in served.stderr.splitlines() if "SECRET_KEY" in line]
    assert len(ours) == 1 and ours[0].startswith("channel_manager: SECRET_KEY is not set"), served.stderr


def test_the_environment_wins_over_the_dev_settings_file_which_is_ignored_with_a_database_url(tmp_path):
    checkout = fresh_checkout(tmp_path / "checkout")
    written = run(".venv/bin/python -m channel_manager.devsettings", checkout)
    assert written.returncode == 0, written.stderr
    file_key = re.search(r"^SECRET_KEY=(\S+)$", (checkout / "var" / "dev.env").read_text(), re.MULTILINE).group(1)
    show = [".venv/bin/python", "manage.py", "shell", "-c",
            "from django.conf import settings; print(settings.SECRET_KEY, settings.DEV)"]

    assert run(show, checkout).stdout.split()[-2:] == [file_key, "True"]
    assert run(show, checkout, SECRET_KEY="from-the-environment").stdout.split()[-2:] == [
        "from-the-environment", "True"]
    production = run(show, checkout, DATABASE_URL="postgres://nobody@127.0.0.1:9/none")
    assert production.returncode != 0 and "SECRET_KEY is not set" in production.stderr
