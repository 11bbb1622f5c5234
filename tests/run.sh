#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh machine, then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v dot >/dev/null 2>&1; then          # Graphviz renders the SVG/PNG exports
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq graphviz >/dev/null
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -qq && sudo apt-get install -y -qq graphviz >/dev/null
  else
    echo "tests/run.sh: Graphviz 'dot' is missing; install the graphviz package" >&2
    exit 2
  fi
fi

python -m pip install -q -e '.[test]'
# pytest exits 5 when it collects no test: that fails this script, as any failure does.
exec python -m pytest -q "$@"
