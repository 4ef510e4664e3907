"""The documents say what the code does: every setting and problem type, and links that lead somewhere.

Fast and self-contained: no event store, no Redis, no server.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
DOCS = ROOT / "docs"

_BACKTICKED = re.compile(r"`([^`]+)`")
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
# `problem(409, "name", ...)`, across lines too.
_PROBLEM_CALL = re.compile(r"\b(?:problem|refusal)\(\s*\d{3}\s*,\s*\"([a-z0-9-]+)\"")  # refusal: cli/limits.py
# The fallback name of an HTTP error with no entry of its own: `_HTTP.get(status, ("name", ...))`.
_HTTP_FALLBACK = re.compile(r"_HTTP\.get\([^,]+,\s*\(\s*\"([a-z0-9-]+)\"")
_PROBLEM_TYPE = re.compile(r"/problems/([a-z0-9-]+)")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _tables(path: Path, first_header: str) -> list[list[list[str]]]:
    """The Markdown tables of `path` whose first column is headed `first_header`: rows of cells, header and rule left out."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] | None = None
    for line in _FENCE.sub("", path.read_text(encoding="utf-8")).splitlines():
        if not line.startswith("|"):
            current = None
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]  # `\|` is a pipe within a cell
        if current is None:
            current = []
            if cells[0] == first_header:
                tables.append(current)
            continue
        if set(cells[0]) <= set("-: "):
            continue
        current.append(cells)
    return tables


def _diff_message(what: str, documented: set[str], in_code: set[str], doc: str) -> str:
    missing = sorted(in_code - documented)
    extra = sorted(documented - in_code)
    parts = []
    if missing:
        parts.append(f"{what} in the code but not documented in {doc}: {', '.join(missing)}")
    if extra:
        parts.append(f"{what} documented in {doc} but not in the code: {', '.join(extra)}")
    return "; ".join(parts)


# Settings


def documented_settings() -> set[str]:
    tables = _tables(DOCS / "configuration.md", "variable")
    assert tables, "docs/configuration.md has no table headed `| variable | ...`"
    names: set[str] = set()
    for table in tables:
        for row in table:
            found = [n for n in _BACKTICKED.findall(row[0]) if _ENV_NAME.fullmatch(n)]
            assert found, f"docs/configuration.md: a row names no variable in its first column: {row[0]!r}"
            names.update(found)
    return names


def test_every_setting_is_documented_and_every_documented_setting_exists() -> None:
    from runtime.settings import ENV, STORE_ENV

    in_code = set(ENV) | set(STORE_ENV)
    documented = documented_settings()
    assert documented == in_code, _diff_message("Settings", documented, in_code, "docs/configuration.md")


def test_each_setting_names_a_settings_field() -> None:
    from runtime.settings import ENV, Settings

    fields = set(Settings.__struct_fields__)
    unknown = {var: field for var, field in ENV.items() if field not in fields}
    assert not unknown, f"runtime.settings.ENV maps variables to no Settings field: {unknown}"


# Problem types


def problem_types_in_code() -> set[str]:
    from api import problems

    names = {name for _, name, _ in problems._DOMAIN.values()} | {name for name, _ in problems._HTTP.values()}
    for path in [*sorted((ROOT / "api").rglob("*.py")), ROOT / "cli" / "limits.py"]:
        source = path.read_text(encoding="utf-8")
        names.update(_PROBLEM_CALL.findall(source))
        names.update(_HTTP_FALLBACK.findall(source))
    return names


def documented_problem_types() -> set[str]:
    tables = _tables(DOCS / "api.md", "type")
    assert tables, "docs/api.md has no problems table headed `| type | status | when |`"
    names: set[str] = set()
    for table in tables:
        for row in table:
            match = _PROBLEM_TYPE.fullmatch(row[0].strip("`"))
            assert match, f"docs/api.md: a problem type is written `/problems/<name>`, not {row[0]!r}"
            names.add(match.group(1))
    return names


def test_problem_types_in_code_are_found() -> None:
    # Guards the scan itself: if these go missing, the regular expressions no longer match the code.
    found = problem_types_in_code()
    assert {"invalid-response", "malformed-request", "view-behind", "idempotency-key-reused"} <= found


def test_every_problem_type_is_documented_and_every_documented_one_exists() -> None:
    in_code = problem_types_in_code()
    documented = documented_problem_types()
    assert documented == in_code, _diff_message("Problem types", documented, in_code, "docs/api.md")


# Links


def _documents() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to dashes."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    return {_anchor(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M)}


def _relative_links(path: Path) -> list[tuple[str, Path, str]]:
    """(link as written, the file it points to, its #fragment or '') for every relative link."""
    links = []
    for target in _LINK.findall(_FENCE.sub("", path.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, fragment = target.partition("#")
        links.append((target, (path.parent / file_part).resolve() if file_part else path, fragment))
    return links


def test_relative_links_lead_to_existing_files() -> None:
    broken = [
        f"{path.relative_to(ROOT)}: {target}"
        for path in _documents()
        for target, file, _ in _relative_links(path)
        if not file.exists()
    ]
    assert not broken, "links to files that do not exist: " + "; ".join(broken)


def test_links_to_headings_find_them() -> None:
    broken = [
        f"{path.relative_to(ROOT)}: {target}"
        for path in _documents()
        for target, file, fragment in _relative_links(path)
        if fragment and file.suffix == ".md" and file.exists() and fragment not in _anchors(file)
    ]
    assert not broken, "links to headings that do not exist: " + "; ".join(broken)


def test_readme_links_every_document() -> None:
    linked = {file for _, file, _ in _relative_links(ROOT / "README.md")}
    unlinked = [p.name for p in sorted(DOCS.glob("*.md")) if p.resolve() not in linked]
    assert not unlinked, f"README.md does not link to: {', '.join(unlinked)}"


def _commands(parser: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every command of an argparse parser, as its words: `("audit", "verify")`."""
    found: set[tuple[str, ...]] = set()
    for action in parser._actions:  # argparse keeps its subcommands here only
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found |= _commands(sub, (*prefix, name)) or {(*prefix, name)}
    return found


def test_the_commands_table_lists_every_agora_command_and_no_other() -> None:
    from cli.main import parser

    commands = _commands(parser())
    documented: set[tuple[str, ...]] = set()
    group = ""
    for (usage, *_) in (row for table in _tables(DOCS / "operations.md", "command") for row in table):
        for text in _BACKTICKED.findall(usage):
            words = text.split()
            if words[:1] == ["agora"]:
                command = next((c for c in commands if tuple(words[1 : 1 + len(c)]) == c), tuple(words[1:3]))
                documented.add(command)
                group = command[0]
            elif re.fullmatch(r"[a-z][a-z-]* [A-Z_]+", text):  # `close SLUG`, after `agora consultation open SLUG`
                documented.add((group, words[0]))
    assert commands - documented == set(), "commands missing from docs/operations.md"
    assert documented - commands == set(), "documented commands that do not exist"
