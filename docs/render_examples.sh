#!/usr/bin/env bash
# Regenerates the example graphs the README shows, from models/xor.nn:
#   docs/xor.svg       the forward graph
#   docs/xor-grad.svg  the forward graph with the backward graph added (--grad)
# Needs nndsl on PATH (pip install -e .) and Graphviz's `dot` (apt-get install graphviz).
# Run from anywhere; paths are relative to the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."

nndsl export models/xor.nn --format svg -o docs/xor.svg
nndsl export models/xor.nn --format svg --grad -o docs/xor-grad.svg
