#!/usr/bin/env bash
# Create/refresh bench/.venv (pinned peers from bench/requirements.txt) and install bourbon
# from this checkout into it (release build through maturin). Used by `make bench(-quick)`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${BENCH_PYTHON:-$(ls "$HOME"/.pyenv/versions/3.11.*/bin/python3.11 2>/dev/null | head -1)}"
PY="${PY:-$(command -v python3.11 || command -v python3)}"
command -v wrk >/dev/null || { echo "bench: wrk missing: apt-get install -y wrk" >&2; exit 1; }
[ -e /usr/include/ev.h ] || echo "bench: libev-dev missing (bjoern will not build): apt-get install -y libev-dev" >&2
stamp=bench/.venv/.requirements.sha
want="$(sha256sum bench/requirements.txt | cut -d' ' -f1)"
if [ ! -x bench/.venv/bin/python ]; then
  "$PY" -m venv bench/.venv
  bench/.venv/bin/pip install -q --upgrade pip
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  bench/.venv/bin/pip install -q -r bench/requirements.txt
  echo "$want" > "$stamp"
fi
# The WebSocket load client of the ASGI cells (a workspace member; maturin never builds it).
echo "== cargo build --release -p wsload"
cargo build -q --release -p wsload
echo "== pip install . into bench/.venv (release build)"
PATH="$PWD/bench/.venv/bin:$PATH" bench/.venv/bin/pip install -q --no-build-isolation .
