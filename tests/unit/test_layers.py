"""The domain imports no infrastructure: no store, HTTP, views, workers, settings, Redis or litestar."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
FORBIDDEN = {"store", "api", "projections", "workers", "runtime", "cli", "redis", "litestar", "psycopg", "sqlite3"}


def imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    return {name.split(".")[0] for name in names}


def test_the_domain_imports_no_infrastructure() -> None:
    modules = sorted((ROOT / "domain").rglob("*.py"))
    assert len(modules) > 10
    offending = {str(p.relative_to(ROOT)): sorted(imported(p) & FORBIDDEN) for p in modules if imported(p) & FORBIDDEN}
    assert offending == {}


def test_serving_and_the_cli_start_without_the_clusterers_libraries() -> None:
    """datasketch imports scipy: a second's start-up, and tens of thousands of objects for the garbage
    collector to walk, in every API process and CLI command, though only the clusterer needs it."""
    code = "import sys, api.app, cli.main; print(sorted({'datasketch', 'scipy'} & sys.modules.keys()))"
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
