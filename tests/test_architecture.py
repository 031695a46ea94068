"""The package's layers (docs/architecture.md): which part may import which, and that napari,
Qt and magicgui stay in the widgets."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "napari_sam2"

NOTHING: frozenset[str] = frozenset()
ALLOWED = {
    "modeling": NOTHING,
    "images": NOTHING,
    "synthetic": NOTHING,
    "progress": NOTHING,
    "checkpoints": {"modeling", "progress"},
    "engine": {"modeling", "images", "progress"},
    "prompt_file": {"engine"},
    "api": {"engine", "images", "checkpoints", "modeling", "prompt_file", "progress"},
    "training": {"engine", "images", "modeling", "synthetic", "progress", "tracking"},
    "demo": {"engine", "checkpoints", "images", "synthetic", "training"},
    "batch": {"api", "engine", "images", "checkpoints", "prompt_file", "progress"},
    "tracking": {"engine", "images", "checkpoints", "modeling", "progress"},
    "cli": None,  # everything
    "_widgets": {"api", "engine", "images", "checkpoints", "modeling", "prompt_file", "progress", "synthetic", "demo", "training", "tracking"},
    "__init__": None,
    "__main__": {"cli"},
}
GUI = ("napari", "qtpy", "magicgui", "PyQt5", "PyQt6", "PySide2", "PySide6", "vispy")


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        yield path, parts


def _imports(path: Path, parts: tuple[str, ...]):
    """(part of ours imported, or None; absolute module name) for every import in a file,
    including those inside functions."""
    package = list(parts[:-1])
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.name.split(".")
                ours = name[1] if name[0] == "napari_sam2" and len(name) > 1 else None
                yield ours, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = base + (node.module.split(".") if node.module else [])
                if target:
                    yield target[0], "napari_sam2." + ".".join(target)
                else:  # from . import x (at the top level)
                    for alias in node.names:
                        yield alias.name, "napari_sam2." + alias.name
            elif node.module:
                name = node.module.split(".")
                yield (name[1] if name[0] == "napari_sam2" and len(name) > 1 else None), node.module


def test_every_part_has_a_rule():
    parts = {p[0] for _, p in _modules()}
    assert parts <= set(ALLOWED) | {"weights"}, f"add {parts - set(ALLOWED)} to docs/architecture.md and ALLOWED"
    top_modules = [p for _, p in _modules() if len(p) == 1]
    assert len(top_modules) <= 7, f"the top level should hold a handful of modules: {top_modules}"


def test_parts_import_only_the_layers_below_them():
    wrong = []
    for path, parts in _modules():
        part = parts[0]
        allowed = ALLOWED[part]
        for ours, module in _imports(path, parts):
            if ours is None or ours == part or ours == "__version__" or allowed is None:
                continue
            if ours not in allowed:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert not wrong, "imports against docs/architecture.md:\n" + "\n".join(wrong)


def test_only_the_widgets_import_napari_or_qt():
    wrong = []
    for path, parts in _modules():
        if parts[0] == "_widgets":
            continue
        for _, module in _imports(path, parts):
            if module.split(".")[0] in GUI:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert not wrong, "\n".join(wrong)


def test_the_rules_are_caught(tmp_path):
    """The checker sees relative imports inside functions (what a careless edit would add)."""
    source = tmp_path / "x.py"
    source.write_text("def f():\n    from ..api import run_session\n    import qtpy\n")
    found = list(_imports(source, ("engine", "x")))
    assert ("api", "napari_sam2.api") in found and (None, "qtpy") in found
