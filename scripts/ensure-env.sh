#!/usr/bin/env bash
# Make .venv/ with everything the project needs, once; later calls return at once.
# torch is installed first and pinned, so that pip keeps that build instead of pulling another
# one for the other packages (set TORCH_SPEC to choose, e.g. TORCH_SPEC="torch==2.13.0").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
stamp=.venv/.installed
want="$(cat pyproject.toml) $TORCH_SPEC"
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "setting up .venv (first use: about two minutes)..." >&2
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >&2
.venv/bin/python -m pip install -q "$TORCH_SPEC" >&2
.venv/bin/python -m pip install -q -e ".[test]" >&2
printf '%s' "$want" > "$stamp"
echo "done: .venv is ready" >&2
