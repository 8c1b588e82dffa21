#!/usr/bin/env bash
# Build or update the project's virtual environment (`make install` runs this).
#
#   tools/install.sh [--check] [VENV]   (default VENV: .venv in the repository root)
#   --check: exit 0 when VENV is up to date, 1 when `make install` would change it; installs nothing.
#
# 1. python3 -m venv VENV (PYTHON=... picks another interpreter; Python 3.11 is the tested one)
# 2. pip install -r requirements.txt (torch/torchvision resolve from local wheel files where the
#    machine's pip configuration provides them)
# 3. pip install --no-deps -e .  (the `vfdepth` command and the node executables on the venv's PATH)
# 4. tools/build_tf2_msgs.py     (tf2_msgs, composition_interfaces: each only when its import fails)
# A stamp file in VENV records a hash of everything above; when it matches, nothing is done.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHECK=0
if [[ "${1:-}" == "--check" ]]; then CHECK=1; shift; fi
VENV="${1:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.vfdepth-install.sha256"
cd "$ROOT"

inputs_hash() {
    # Everything that changes what gets installed.
    {
        "$PYTHON" -c 'import sys; print(sys.version)'
        cat requirements.txt setup.py setup.cfg package.xml tools/install.sh tools/build_tf2_msgs.py
        find ros2_ws/src/tf2_msgs ros2_ws/src/composition_interfaces -type f | LC_ALL=C sort | xargs cat
    } | sha256sum | cut -d' ' -f1
}

want="$(inputs_hash)"
if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    echo "install: $VENV is up to date"
    exit 0
fi
if [[ $CHECK == 1 ]]; then
    echo "install: $VENV is missing or out of date (run make install)"
    exit 1
fi

start=$(date +%s)
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "install: creating $VENV with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
rm -f "$STAMP"
# Some machines' pip configuration lists local index folders that lack most packages; pip warns once
# per package about each. Drop that noise, keep everything else (exit status kept by pipefail).
quiet_pip() { "${PIP[@]}" "$@" 2>&1 | sed -u '/is ignored: it is neither a file nor a directory/d'; }

echo "install: pip install -r requirements.txt (first run: a few minutes, about 6 GB)"
quiet_pip install --quiet -r requirements.txt

echo "install: pip install --no-deps -e . (vfdepth + node executables)"
quiet_pip install --quiet --no-deps --no-build-isolation -e .

echo "install: tf2_msgs, composition_interfaces (only what does not import)"
"$VENV/bin/python" tools/build_tf2_msgs.py

echo "$want" > "$STAMP"
echo "install: done in $(( $(date +%s) - start )) s; $VENV holds $(du -sh "$VENV" 2>/dev/null | cut -f1)"
