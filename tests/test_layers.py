"""The dependencies between the top-level parts, as docs/architecture.md states them.

A scan of every module's imports (module level and inside functions): a new edge between parts
fails here until the page and :data:`ALLOWED` say it is meant.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("core", "models", "config", "view", "streams", "api", "cli", "bench")
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "models": {"core"},
    "config": {"core", "view"},
    "view": {"core"},
    "streams": {"core", "config", "view"},
    "api": {"core", "models", "config", "view"},
    "cli": {"core", "models", "config", "streams", "api"},
    "bench": {"core", "config", "view", "streams"},
}
SHELL_LIBRARIES = (
    "faust",
    "mode",
    "aiokafka",
    "redis",
    "fastapi",
    "starlette",
    "aiohttp",
    "rocksdict",
    "uvicorn",
    "socket",
    "asyncio",
    "os",
    "pathlib",
    "yaml",
)


def _imports(part: str) -> dict[str, set[str]]:
    """Top-level names each module of ``part`` imports."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / part).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


def test_each_part_imports_only_the_parts_below_it() -> None:
    wrong = {
        module: sorted(set(PARTS) & names - ALLOWED[part] - {part})
        for part in PARTS
        for module, names in _imports(part).items()
        if set(PARTS) & names - ALLOWED[part] - {part}
    }
    assert wrong == {}


def test_the_core_imports_no_shell_library() -> None:
    wrong = {
        module: sorted(names & set(SHELL_LIBRARIES))
        for module, names in _imports("core").items()
        if names & set(SHELL_LIBRARIES)
    }
    assert wrong == {}


def test_the_page_names_every_module() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text()
    missing = [
        str(path.relative_to(ROOT).with_suffix(""))
        for part in PARTS
        for path in sorted((ROOT / part).rglob("*.py"))
        if path.name != "__init__.py"
        and f"`{path.relative_to(ROOT).with_suffix('')}`".replace("\\", "/") not in page
        and f"`{path.stem}`" not in page
    ]
    assert missing == []
