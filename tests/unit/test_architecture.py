"""Imports point inwards: the domain knows no outer layer, the application no adapter.

Every module is parsed with `ast` (not imported), so an import hidden in a function or
behind `TYPE_CHECKING` counts too. eventsourcing is allowed everywhere.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "sora2"

FRAMEWORKS = ("litestar", "psycopg", "nats", "minio", "jwt", "argon2", "redis", "httpx")
OUTER = ("sora2.adapters", "sora2.bootstrap", "sora2.config", "sora2.cli")

FORBIDDEN = {
    "domain": (*FRAMEWORKS, *OUTER, "sora2.application"),
    "application": (*FRAMEWORKS, *OUTER),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module `source` imports, relative imports resolved against `module`."""
    names: set[str] = set()
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            names.add(target)
            # `from sora2 import adapters` imports sora2.adapters
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return names


def is_within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(layer: str) -> list[str]:
    found = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        module = module_name(path)
        names = imported_names(path.read_text(), module, path.name == "__init__.py")
        found += [
            f"{module} imports {name}"
            for name in sorted(names)
            if any(is_within(name, banned) for banned in FORBIDDEN[layer])
        ]
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_no_outer_layer(layer: str) -> None:
    assert list((PACKAGE / layer).rglob("*.py")), f"no modules found under {layer}"
    assert violations(layer) == []


@pytest.mark.parametrize(
    "source",
    [
        "import litestar",
        "import psycopg.sql",
        "from jwt import encode",
        "from sora2.adapters.views.sql import SqlReadModels",
        "from sora2 import bootstrap",
        "from sora2.config import Settings",
        "from ...adapters import clock",
        "def later():\n    import redis",
    ],
)
def test_the_check_sees_outer_imports_in_any_form(source: str) -> None:
    names = imported_names(source, "sora2.application.projections.view")
    assert any(is_within(n, b) for n in names for b in FORBIDDEN["application"]), names


@pytest.mark.parametrize(
    "source",
    [
        "import eventsourcing.domain",
        "from sora2.domain.errors import NotFound",
        "from .rows import CreditRow",
        "import natsort",  # a name that merely starts like a banned one
    ],
)
def test_the_check_allows_inner_imports(source: str) -> None:
    names = imported_names(source, "sora2.application.projections.view")
    assert not any(is_within(n, b) for n in names for b in FORBIDDEN["application"]), names


def test_the_domain_may_not_import_the_application() -> None:
    names = imported_names("from ..application import event_log", "sora2.domain.errors")
    assert "sora2.application.event_log" in names
    assert any(is_within(n, b) for n in names for b in FORBIDDEN["domain"])
