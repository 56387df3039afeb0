#!/usr/bin/env bash
# Create .venv from a Python 3.10 interpreter and install the package with its dev extras.
# Order of search (DESIGN §3): python3.10 on PATH if it runs, else pyenv's versions folder.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python310() {
    if command -v python3.10 >/dev/null 2>&1 \
        && python3.10 -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1; then
        command -v python3.10
        return 0
    fi
    local root
    root="$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")"
    local candidate
    for candidate in $(ls -d "$root"/versions/3.10.*/bin/python3.10 2>/dev/null | sort -V -r); do
        if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

stamp=.venv/.pspike-installed
if [[ -f "$stamp" && "$stamp" -nt pyproject.toml ]] && .venv/bin/python -c 'import pspike_neuro' 2>/dev/null; then
    exit 0
fi

if ! PY=$(find_python310); then
    echo "error: Python 3.10 is required (lava-nc 0.10.0 supports only 3.10); install it, e.g. 'pyenv install 3.10.13', and rerun" >&2
    exit 2
fi

if [[ ! -x .venv/bin/python ]] || ! .venv/bin/python -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
    rm -rf .venv
    echo "creating .venv with $PY"
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
echo "installing pspike-neuro and its dependencies into .venv (first time: several minutes)"
.venv/bin/python -m pip install --quiet --progress-bar off -e '.[dev]'
touch "$stamp"
