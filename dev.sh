#!/usr/bin/env bash
# mlinfn-compress: set-up and the everyday commands.
#
#   ./dev.sh example   compress the built-in example model, emit VHDL, verify it in GHDL, write the report
#   ./dev.sh test      run the test suite and execute the tutorial notebooks (offline)
#   ./dev.sh test --quick   the tests not marked slow, no notebooks (about 2 minutes)
#   ./dev.sh notebook  start JupyterLab on localhost with the tutorials (examples/tutorials)
#   ./dev.sh lint      ruff check, ruff format --check and mypy
#   ./dev.sh lock      re-pin requirements.lock from .venv (registry packages only)
#   ./dev.sh doctor    list the external tools and packages the tool uses, and what is missing
#
# Each command first does whatever set-up is missing (Debian packages GHDL,
# yosys, Icarus Verilog, nextpnr-ice40 with the IceStorm tools, Chromium; a
# virtual environment in .venv with the pinned dependencies, the editable
# install) and skips what is already done.
set -euo pipefail
cd "$(dirname "$0")"

VENV=.venv
STAMP="$VENV/.mlinfn-setup"
# GHDL's backends are named one by one: Debian's `ghdl` depends on any one of ghdl-mcode | ghdl-gcc |
# ghdl-llvm, and with ghdl-llvm in the same install apt would take no mcode backend. mcode runs short
# simulations and cocotb; llvm runs long benches about three times faster (sim/ghdl.py chooses).
APT_PACKAGES=(ghdl ghdl-mcode ghdl-llvm yosys iverilog nextpnr-ice40 fpga-icestorm chromium g++)

say() { printf '[dev.sh] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

installed() { # whether a Debian package is installed (by the package, not by a command found on PATH)
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

ensure_system() {
  local missing=() pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    installed "$pkg" || missing+=("$pkg")
  done
  if ! command -v python3.11 >/dev/null 2>&1 && ! python3 -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null; then
    missing+=(python3.11 python3.11-venv)
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

python311() {
  if command -v python3.11 >/dev/null 2>&1; then echo python3.11; else echo python3; fi
}

ensure_python() {
  local want
  want=$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
  if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    return 0
  fi
  local py
  py=$(python311)
  if ! "$py" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    say "installing python3-venv"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  fi
  say "creating the virtual environment in $VENV (pinned dependencies from requirements.lock)"
  [ -x "$VENV/bin/python" ] || "$py" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -r requirements.lock
  "$VENV/bin/python" -m pip install -q --no-deps -e .
  echo "$want" >"$STAMP"
}

setup() {
  ensure_system
  ensure_python
}

cmd=${1:-help}
shift || true
case "$cmd" in
  setup)
    setup
    ;;
  example)
    setup
    exec "$VENV/bin/mlinfn-compress" examples/models/digits_mlp.h5 \
      --calibration examples/models/digits_calibration.npy \
      --target vhdl -o out/digits_mlp --force "$@"
    ;;
  test)
    setup
    if [ "${1:-}" = --quick ]; then
      # everyday work: everything but the tests marked slow (GHDL at scale, training, place-and-route) and
      # the notebooks; about 2 minutes on a 2-core machine
      shift
      [ $# -gt 0 ] || set -- tests
      set -- -m "not slow" "$@"
    elif [ $# -eq 0 ]; then
      # the suite, then every notebook in examples/tutorials run top to bottom by nbmake, offline
      # (the jet data's synthetic stand-in); a failing cell or a design that does not verify fails
      set -- tests examples/tutorials --nbmake --nbmake-timeout=900
    fi
    MLINFN_OFFLINE=1 exec "$VENV/bin/python" -m pytest -q "$@"
    ;;
  notebook)
    setup
    say "JupyterLab on http://localhost:${NOTEBOOK_PORT:-8888}/lab (the URL with its token follows)"
    root=()
    [ "$(id -u)" -ne 0 ] || root=(--allow-root) # a container's root user: Jupyter refuses it otherwise
    exec "$VENV/bin/jupyter" lab --ip=127.0.0.1 --port="${NOTEBOOK_PORT:-8888}" --no-browser \
      --notebook-dir=examples/tutorials "${root[@]}" "$@"
    ;;
  lock)
    # Re-pin requirements.lock from what .venv holds: registry packages only
    # (the project's own editable install and any local path are left out).
    setup
    "$VENV/bin/python" -m pip freeze --exclude-editable --all \
      | grep -v -E '^(pip|setuptools|wheel)==' | sed -E 's/^([^=]+==[^+]+)\+.*/\1/' >requirements.lock.new
    if grep -n -E '^-e |^-e$|file:| @ ' requirements.lock.new; then
      rm -f requirements.lock.new
      say "refusing to write a lock with local or editable entries (above)"
      exit 1
    fi
    mv requirements.lock.new requirements.lock
    cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1 >"$STAMP"
    say "requirements.lock: $(wc -l <requirements.lock) pinned packages"
    ;;
  lint)
    setup
    "$VENV/bin/ruff" check .
    "$VENV/bin/ruff" format --check .
    "$VENV/bin/mypy" # the packages [tool.mypy] in pyproject.toml names
    ;;
  doctor)
    setup
    exec "$VENV/bin/mlinfn-compress" doctor
    ;;
  *)
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    [ "$cmd" = help ] || exit 2
    ;;
esac
