"""The layering is a rule of the codebase: these tests fail when an arrow points the wrong way."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = [
    "channel_manager", "channel_manager/kernel", "channel_manager/orders", "channel_manager/orders/api",
    "channel_manager/orders/admin", "channel_manager/octo", "channel_manager/ops", "catalog", "wallets",
    "notifications",
]


def test_the_import_linter_contracts_are_kept():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _imports(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return modules


def test_no_app_below_orders_imports_orders():
    offenders = []
    for app in ("catalog", "wallets", "notifications"):
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for module in _imports(path):
                if module == "channel_manager" or (
                    module.startswith("channel_manager.") and not module.startswith("channel_manager.kernel")
                ):
                    offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert offenders == []


def test_the_kernel_imports_no_app():
    offenders = []
    for path in (ROOT / "channel_manager" / "kernel").rglob("*.py"):
        for module in _imports(path):
            top = module.split(".")[0]
            if top in {"catalog", "wallets", "notifications"} or (
                top == "channel_manager" and not module.startswith("channel_manager.kernel")
            ):
                offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert offenders == []


def test_every_package_says_what_it_owns():
    def docstring(package: str) -> str | None:
        return ast.get_docstring(ast.parse((ROOT / package / "__init__.py").read_text()))

    missing = [package for package in PACKAGES if not docstring(package)]
    assert missing == []
