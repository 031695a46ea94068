"""Packaging: the wheel ships the napari manifest, npe2 finds the plugin, and the headless
package never imports Qt or napari."""

from __future__ import annotations

import configparser
import json
import os
import shutil
import site
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROOT_MANIFEST = ROOT / "napari.yaml"
PLUGIN_NAME = "napari-sam2"
GUI_MODULES = ("qtpy", "napari", "magicgui", "PyQt5", "PyQt6", "PySide2", "PySide6")

# Left out of the copy the wheel is built from: version control, environments, build leftovers.
# (Building in the work tree would leave build/ behind, and setuptools puts whatever is in
# build/lib into the next wheel, deleted modules included.)
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis"
)


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a command; on failure, the assertion message carries its output."""
    proc = subprocess.run(args, capture_output=True, text=True, **kwargs)
    assert proc.returncode == 0, (
        f"{args} exited with {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    )
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel of the project, built from a clean copy of the work tree by the current Python."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=NOT_SOURCES)
    out = tmp / "dist"
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(source)],
    )
    wheels = sorted(out.glob("napari_sam2-*.whl"))
    assert len(wheels) == 1, f"expected one napari_sam2 wheel, found {wheels}"
    return wheels[0]


def test_wheel_ships_the_manifest_and_declares_the_entry_point(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert "napari_sam2/napari.yaml" in names, f"manifest missing from the wheel: {names}"
        shipped = zf.read("napari_sam2/napari.yaml").decode()
        entry_points_files = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert len(entry_points_files) == 1, f"entry_points.txt missing from the wheel: {names}"
        entry_points_text = zf.read(entry_points_files[0]).decode()

    assert shipped == ROOT_MANIFEST.read_text(), "the wheel's napari.yaml differs from the root one"

    entry_points = configparser.ConfigParser(delimiters=("=",))
    entry_points.optionxform = str  # keep names as written
    entry_points.read_string(entry_points_text)
    assert entry_points.has_section("napari.manifest"), entry_points_text
    assert entry_points["napari.manifest"].get(PLUGIN_NAME) == "napari_sam2:napari.yaml"
    assert entry_points["console_scripts"].get("napari-sam2") == "napari_sam2.cli:main"


def test_root_manifest_validates():
    import npe2

    manifest = npe2.PluginManifest.from_file(ROOT_MANIFEST)
    assert manifest.name == PLUGIN_NAME


def test_npe2_discovers_the_installed_plugin():
    import npe2

    pm = npe2.PluginManager()  # a fresh manager: napari's global one may already be populated
    pm.discover()
    assert PLUGIN_NAME in {m.name for m in pm.iter_manifests()}, "npe2 did not discover the plugin"
    found = pm.get_manifest(PLUGIN_NAME)
    expected = npe2.PluginManifest.from_file(ROOT_MANIFEST)
    assert found.display_name == expected.display_name
    assert found.contributions == expected.contributions
    assert found.package_metadata is not None and found.package_metadata.name == PLUGIN_NAME


# Run with `python -S`: no site module, so no .pth file is read and the editable install's path
# (or finder) is absent. PYTHONPATH puts the target directory first, then site-packages for npe2
# and its dependencies. The editable install's dist-info is still listed by importlib.metadata,
# but its entry point resolves the `napari_sam2` module through sys.path, i.e. to the target.
DISCOVER_FROM_TARGET = textwrap.dedent(
    """
    import importlib.util, json, sys
    from importlib import metadata

    import npe2

    read = []  # every manifest file npe2 parses
    from_file = npe2.PluginManifest.from_file.__func__

    def spy(cls, path):
        read.append(str(path))
        return from_file(cls, path)

    npe2.PluginManifest.from_file = classmethod(spy)

    pm = npe2.PluginManager()
    pm.discover()
    names = [m.name for m in pm.iter_manifests()]
    spec = importlib.util.find_spec("napari_sam2")
    print(json.dumps({
        "sys_path": sys.path,
        "plugins": names,
        "module_dirs": list(spec.submodule_search_locations) if spec else [],
        "manifests_read": [p for p in read if "napari_sam2" in p],
        "dists": [str(d.locate_file("")) for d in metadata.distributions()
                  if d.metadata["Name"] == "napari-sam2"],
    }))
    """
)


def test_npe2_discovers_the_plugin_installed_from_the_wheel(wheel, tmp_path):
    target = (tmp_path / "target").resolve()
    run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
         str(wheel)])
    assert (target / "napari_sam2" / "napari.yaml").is_file()

    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = os.pathsep.join([str(target), *site.getsitepackages()])
    proc = run([sys.executable, "-S", "-c", DISCOVER_FROM_TARGET], cwd=tmp_path, env=env)
    seen = json.loads(proc.stdout)

    assert str(ROOT / "src") not in seen["sys_path"], "the editable install is visible"
    first = [p for p in seen["sys_path"] if p][0]  # '' (the working directory) may precede it
    assert first == str(target), f"target is not first on sys.path: {seen['sys_path']}"
    assert seen["module_dirs"] == [str(target / "napari_sam2")], seen["module_dirs"]
    assert seen["dists"] and seen["dists"][0] == str(target), (
        f"the first napari-sam2 distribution is not the target's: {seen['dists']}"
    )
    assert PLUGIN_NAME in seen["plugins"], f"npe2 did not discover the plugin: {seen['plugins']}"
    assert seen["manifests_read"], "npe2 read no napari_sam2 manifest"
    assert all(Path(p).is_relative_to(target) for p in seen["manifests_read"]), (
        f"manifest read from outside the target directory: {seen['manifests_read']}"
    )


# pkgutil.walk_packages imports each subpackage it meets in order to descend into it, so it
# would import `_widgets` (which imports Qt) before we could skip it. This walks the same way,
# with pkgutil.iter_modules, but checks the name before importing. `__main__` modules are not
# imported either: importing one runs the program.
IMPORT_EVERYTHING = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys

    GUI = {gui!r}

    def gui_loaded():
        return sorted(m for m in GUI if m in sys.modules)

    import napari_sam2

    imported, first_offender = ["napari_sam2"], {{}}
    if gui_loaded():
        first_offender["napari_sam2"] = gui_loaded()

    def walk(path, prefix):
        for info in pkgutil.iter_modules(path, prefix):
            if "._widgets" in info.name or info.name.endswith(".__main__"):
                continue
            module = importlib.import_module(info.name)
            imported.append(info.name)
            if gui_loaded() and not first_offender:
                first_offender[info.name] = gui_loaded()
            if info.ispkg:
                walk(module.__path__, info.name + ".")

    walk(napari_sam2.__path__, "napari_sam2.")
    print(json.dumps({{"package_dir": napari_sam2.__path__[0], "imported": imported,
                      "first_offender": first_offender, "gui_loaded": gui_loaded()}}))
    """
).format(gui=GUI_MODULES)


def modules_on_disk(package_dir: Path) -> set[str]:
    """Dotted names of the modules in `package_dir`, a package named napari_sam2, that are
    importable as part of it (every folder up to it has an __init__.py)."""
    names = set()
    for path in package_dir.rglob("*.py"):
        rel = path.relative_to(package_dir)
        folders = [package_dir.joinpath(*rel.parts[:i]) for i in range(1, len(rel.parts))]
        if not all((f / "__init__.py").is_file() for f in folders):
            continue
        parts = ["napari_sam2", *rel.with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        name = ".".join(parts)
        if "._widgets" not in name and not name.endswith(".__main__"):
            names.add(name)
    return names


def test_headless_modules_import_no_gui_toolkit(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = run([sys.executable, "-c", IMPORT_EVERYTHING], cwd=tmp_path, env=env)
    seen = json.loads(proc.stdout)

    # The walk must have covered every module on disk, or the check below proves nothing.
    assert set(seen["imported"]) == modules_on_disk(Path(seen["package_dir"])), seen["imported"]
    assert not seen["first_offender"], (
        f"importing {next(iter(seen['first_offender']))} loaded "
        f"{next(iter(seen['first_offender'].values()))}; all GUI modules loaded in the end: "
        f"{seen['gui_loaded']}"
    )
    assert not seen["gui_loaded"]


def test_wheel_ships_the_built_in_model_and_its_metadata(wheel):
    """The offline default model travels inside the wheel, identical to the source tree's."""
    import json

    from napari_sam2.checkpoints.shipped import SHIPPED_MODEL, shipped_weights

    source = shipped_weights()
    with zipfile.ZipFile(wheel) as zf:
        weights = zf.read(f"napari_sam2/weights/{SHIPPED_MODEL}.pt")
        metadata = json.loads(zf.read(f"napari_sam2/weights/{SHIPPED_MODEL}.json"))
    assert weights == source.read_bytes()
    assert len(weights) <= 25e6
    assert metadata["architecture"] == SHIPPED_MODEL and "command" in metadata and "metrics" in metadata
