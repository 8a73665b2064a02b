#!/usr/bin/env bash
# Render the HTML report of the seed articles in real headless Chromium and take a screenshot.
# Not part of `make test`: it installs Debian's chromium when missing.
#   scripts/check_report.sh [MODEL] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-champion}
out=${2:-/tmp/claims-report-check}
mkdir -p "$out"
out=$(realpath "$out")
if ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium (Debian package)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
.venv/bin/claims -q predict data/articles/seeds --model "$model" --format html -o "$out/seeds.html"
profile=$(mktemp -d)
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --window-size=1280,1600 --hide-scrollbars \
  --screenshot="$out/seeds.png" "file://$out/seeds.html" 2>/dev/null
rm -rf "$profile"
test -s "$out/seeds.png"
echo "screenshot: $out/seeds.png (report: $out/seeds.html)"
