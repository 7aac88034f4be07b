"""Check the packages' import arrows and the size of the realtime path's modules."""
import ast
from pathlib import Path

import pytest

CHAT = Path(__file__).resolve().parents[1]
PACKAGES = ("domain", "realtime", "web", "platform")
# Web and realtime import the domain and the platform; the web pages also show realtime pieces
# (presence, the history frame, the build id). Nothing points back.
FORBIDDEN = {
    "domain": {"realtime", "web"},
    "realtime": {"web"},
    "web": set(),
    "platform": {"domain", "realtime", "web"},
}
# A module past this has outgrown one job: split it into a package (services/messages.py, services/rooms.py).
LINE_BUDGET = 450
# consumers.py holds both consumers (v2 ChatConsumer and the deprecated v1 RoomConsumer adapter): split it
# (v2 and v1 apart, the request handlers apart). frames.py is protocol v2's frames, each defined once in one
# module on purpose (the parser, encoder and JSON Schema come from it; test_frames.py checks the docs against it).
OVER_BUDGET = {"realtime/consumers.py", "realtime/frames.py"}


def modules(package):
    """Return the files of one package."""
    return sorted((CHAT / package).glob("*.py"))


def module_name(path):
    """Return the dotted name of a file under chat/."""
    parts = path.relative_to(CHAT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path):
    """Yield every module a file imports (relative imports resolved, imports inside functions too)."""
    package = module_name(path) if path.stem == "__init__" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("chat."):
            # A dotted path handed to import_string or a setting is an arrow too.
            if " " not in node.value:
                yield node.value


def layer(module):
    """Return the package a dotted chat module belongs to, or None outside the four."""
    parts = module.split(".")
    if parts[0] != "chat" or len(parts) < 2:
        return None
    if parts[1] == "models":
        return "domain"  # the shim Django looks for
    return parts[1] if parts[1] in PACKAGES else None


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_one_way(package):
    """Check that no module of a package imports (or names by a dotted string) a package it must not."""
    wrong = sorted(
        f"{module_name(path)} imports {target}"
        for path in modules(package)
        for target in set(imported(path))
        if layer(target) in FORBIDDEN[package]
    )
    assert wrong == []


def test_chat_has_no_flat_modules_left():
    """Check that chat/ keeps only the app's own modules; everything else lives in a package."""
    assert sorted(p.name for p in CHAT.glob("*.py")) == ["__init__.py", "apps.py", "models.py"]


def test_modules_stay_within_the_line_budget():
    """Check that every module of the packages stays within LINE_BUDGET lines, bar the listed exemptions."""
    sizes = {
        str(path.relative_to(CHAT)): len(path.read_text().splitlines())
        for package in PACKAGES for path in modules(package)
    }
    assert {name: size for name, size in sizes.items() if size > LINE_BUDGET and name not in OVER_BUDGET} == {}
    # An exemption that is no longer needed is dropped.
    assert {name for name in OVER_BUDGET if sizes.get(name, 0) <= LINE_BUDGET} == set()
