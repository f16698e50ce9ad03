"""The CLI is a client of ingest's HTTP API: it never imports a service, the runtime or a driver."""

import ast
import sys
from pathlib import Path

import pytest

import recupero_cli

pytestmark = pytest.mark.unit

ALLOWED_THIRD_PARTY = {"httpx", "rich", "typer"}


def imported_top_level_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
    return modules


def test_the_cli_imports_only_the_stdlib_typer_rich_and_httpx() -> None:
    package = Path(recupero_cli.__file__).parent
    sources = sorted(package.glob("*.py"))
    assert sources

    for source in sources:
        foreign = (
            imported_top_level_modules(source)
            - set(sys.stdlib_module_names)
            - ALLOWED_THIRD_PARTY
            - {"recupero_cli"}
        )
        assert not foreign, f"{source.name} imports {sorted(foreign)}"
