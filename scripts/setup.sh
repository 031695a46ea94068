#!/usr/bin/env bash
# Sets up everything the project needs, idempotently: system libraries for napari under Xvfb,
# the venv .venv at the repository root, torch, napari-sam2 (editable) with its napari and test
# extras, and the reference `sam2` for the parity tests. Sourced by test.sh and demo.sh, which
# then use $PY. Re-running is cheap: the pip steps are skipped while a stamp in .venv matches
# this script and pyproject.toml and the installed versions still check out.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
STAMP="$VENV/.napari-sam2-test-setup"

# Exact pins: any other torch may make pip fetch a multi-GB CUDA build.
TORCH_PIN="torch==2.14.1"
TORCHVISION_PIN="torchvision==0.29.1"
SAM2_PIN="sam2==1.1.0"

# What Qt (napari's PyQt6) needs to open windows under Xvfb on Debian.
APT_PACKAGES=(xvfb libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-cursor0
    libxkbcommon-x11-0 libgl1 libegl1 libdbus-1-3 libfontconfig1)

START=$SECONDS
section() { printf '\n===== %s (t=%ds) =====\n' "$*" "$((SECONDS - START))"; }

# --- System packages -------------------------------------------------------------------------
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    # `dpkg -s` also succeeds for removed packages whose config files remain: check the status.
    dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        section "apt: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q
        apt-get install -y -q --no-install-recommends "${missing[@]}"
    else
        echo "warning: missing system packages (${missing[*]}) and not root:" \
            "tests that open a napari viewer may fail" >&2
    fi
fi

# --- Virtual environment ---------------------------------------------------------------------
# Reuse .venv when its interpreter runs; a venv whose base Python went away is rebuilt.
if [[ -x "$PY" ]] && "$PY" -c 'import sys, pip' 2>/dev/null; then
    section "venv: reusing .venv ($("$PY" --version))"
else
    section "venv: creating .venv"
    rm -rf "$VENV"
    "${PYTHON:-python3}" -m venv "$VENV"
fi

# The stamp holds the hash of the files that decide what gets installed.
want_stamp="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)"

# Checks, without importing anything heavy, that the installed versions are the ones pinned and
# that our package is installed from this checkout (a venv copied from elsewhere is not).
installed_ok() {
    "$PY" - "$ROOT" <<'EOF'
import importlib.metadata as md, importlib.util, pathlib, sys
want = {"torch": "2.14.1", "torchvision": "0.29.1", "sam2": "1.1.0"}
for name, version in want.items():
    try:
        got = md.version(name).split("+")[0]
    except md.PackageNotFoundError:
        sys.exit(f"{name} is not installed")
    if got != version:
        sys.exit(f"{name} {got} is installed, {version} is pinned")
spec = importlib.util.find_spec("napari_sam2")
here = pathlib.Path(sys.argv[1]).resolve()
if spec is None or here not in pathlib.Path(spec.origin).resolve().parents:
    sys.exit("napari_sam2 is not installed from this checkout")
EOF
}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want_stamp" ]] && installed_ok; then
    section "pip: up to date (stamp matches), skipping installs"
else
    rm -f "$STAMP"
    # Every pip call below gets the torch pins as constraints, so no dependency can pull in
    # another torch build.
    CONSTRAINTS="$VENV/torch-constraints.txt"
    printf '%s\n' "$TORCH_PIN" "$TORCHVISION_PIN" >"$CONSTRAINTS"
    # pip lists every package missing from the machine's local file:// indexes as "ignored":
    # hundreds of harmless lines, filtered out of its stderr.
    pip_install() {
        local rc=0
        "$PY" -m pip install --progress-bar off -q -c "$CONSTRAINTS" "$@" \
            2>"$VENV/pip-stderr.log" || rc=$?
        grep -v 'is ignored: it is neither a file nor a directory' "$VENV/pip-stderr.log" >&2 || true
        return "$rc"
    }

    section "pip: $TORCH_PIN $TORCHVISION_PIN"
    pip_install "$TORCH_PIN" "$TORCHVISION_PIN"

    section "pip: build tools"
    pip_install "setuptools>=64" wheel

    # No build isolation: setuptools is already here, and an isolated build env would be
    # downloaded afresh on every install.
    section "pip: napari-sam2 (editable) with extras napari, test"
    pip_install --no-build-isolation -e ".[napari,test]"

    # The reference implementation, for the parity tests. Its sdist declares a torch
    # requirement and would compile a CUDA extension: no deps, no isolation, no CUDA build.
    section "pip: reference implementation $SAM2_PIN"
    SAM2_BUILD_CUDA=0 pip_install --no-deps --no-build-isolation "$SAM2_PIN"

    installed_ok
    echo "$want_stamp" >"$STAMP"
fi

