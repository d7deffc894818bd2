#!/usr/bin/env bash
# Set up livctl on Debian or Ubuntu: the system packages it and its tests use, a virtual
# environment in .venv, and livctl installed there (editable) with its test extras.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# libportaudio2: sound cards (audio:// backend); jackd2: a real audio server for the tests;
# socat: virtual serial pairs; xvfb and the xcb libraries: Qt windows without a screen;
# imagemagick: screenshots of those windows; python3-venv: the virtual environment;
# poppler-utils: the tests read the PDF reports (pdftotext, pdfinfo) as a person would open them.
PACKAGES=(python3-venv libportaudio2 jackd2 socat xvfb xauth libxcb-icccm4 libxcb-keysyms1
          libxcb-cursor0 imagemagick poppler-utils)

missing=()
for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    echo "livctl setup: installing system packages: ${missing[*]}"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# postgresql: the multi-site tests start a private PostgreSQL server of their own in a temporary
# directory (tests/pgserver.py); only the server binaries are needed, not a running cluster.
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && ! command -v initdb >/dev/null 2>&1; then
    echo "livctl setup: installing postgresql (server binaries for the multi-site tests)"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "livctl setup: creating .venv with $("$python" --version)"
    "$python" -m venv .venv
fi
echo "livctl setup: installing livctl and its test tools into .venv"
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
# an editable install is not byte-compiled (a wheel install is): do it, so commands start quickly
# even where the environment forbids writing bytecode on import (PYTHONDONTWRITEBYTECODE)
.venv/bin/python -m compileall -q src firmware_sim
echo "livctl setup: ready ($(.venv/bin/livctl --version))"
