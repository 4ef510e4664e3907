"""The domain imports no infrastructure: no store, HTTP, views, workers, settings, Redis or litestar."""

from __future__ import annotations

import ast
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
