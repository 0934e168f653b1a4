#!/usr/bin/env bash
# Create .venv with the pinned stack and install this repository into it (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.requirements.sha
want=$(cat requirements.txt requirements-nodeps.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install --upgrade pip >/dev/null
  # torch first so that torchaudio and the rest resolve against the same build.
  .venv/bin/python -m pip install "torch==2.9.1" "torchvision==0.24.1"
  .venv/bin/python -m pip install -r requirements.txt
  .venv/bin/python -m pip install --no-deps -r requirements-nodeps.txt
  .venv/bin/python -m pip install --no-deps -e .
  echo "$want" > "$stamp"
fi
