"""The development settings file of the embedded default: `dev.env` beside the SQLite database
(`var/dev.env` unless SQLITE_PATH moves the database), ignored by git.

`make run` creates it once (`python -m channel_manager.devsettings`) with a generated
SECRET_KEY, CM_DEV=1 and WEBHOOK_ALLOW_PRIVATE_TARGETS=1. settings.py reads it whenever
DATABASE_URL is unset, so every `manage.py` command in the checkout, and every process `make run`
starts, shares those settings with no variable to set first. A variable in the environment wins
over the file. With DATABASE_URL set (production, `make test`) the file is never read, so a
stray file on a server cannot switch a production process into development mode.

The format is the systemd EnvironmentFile syntax of deploy/production.env.example: `KEY=value`
lines and `#` comments, no quotes, no interpolation. Reading it takes the few lines below rather
than a dependency (django-environ): we write the file ourselves, and django-environ's own rules
(quotes, `$VAR` expansion) would read the same line differently from systemd.

This module imports nothing from Django: settings.py and `make run` use it before Django starts.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
FILE_NAME = "dev.env"


def sqlite_path(base_dir: Path = BASE_DIR) -> Path:
    """The embedded database: $SQLITE_PATH, or var/db.sqlite3 in the checkout."""
    return Path(os.environ.get("SQLITE_PATH") or base_dir / "var" / "db.sqlite3")


def dev_file(base_dir: Path = BASE_DIR) -> Path:
    """Beside the SQLite database, as the demo key is: each SQLITE_PATH has its own settings."""
    return sqlite_path(base_dir).parent / FILE_NAME


def parse(text: str) -> dict[str, str]:
    """KEY=value lines; blank lines and lines starting with # are skipped."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values


def load(path: Path) -> bool:
    """Put the file's settings into os.environ where the environment has none; False when there
    is no file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    for key, value in parse(text).items():
        os.environ.setdefault(key, value)
    return True


def contents() -> str:
    return (
        "# Development settings of the embedded database (written by `make run`; never read when\n"
        "# DATABASE_URL is set). KEY=value lines; a variable in the environment wins.\n"
        f"SECRET_KEY={secrets.token_urlsafe(50)}\n"
        "CM_DEV=1\n"
        "WEBHOOK_ALLOW_PRIVATE_TARGETS=1\n"
    )


def create(path: Path) -> bool:
    """Write a new file, readable by its owner only, unless one exists; True when written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two `make run`s at once never overwrite each other's secret key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(contents())
    return True


def main() -> None:
    """`make run`'s first step: create the file when the embedded database is in use."""
    if os.environ.get("DATABASE_URL"):
        return  # not read with a DATABASE_URL of your own: nothing to write
    path = dev_file()
    if create(path):
        print(f"Wrote the development settings to {path} (a new SECRET_KEY, CM_DEV=1, "
              "WEBHOOK_ALLOW_PRIVATE_TARGETS=1).")


if __name__ == "__main__":
    main()
