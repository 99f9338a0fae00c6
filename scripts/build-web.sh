#!/usr/bin/env bash
# Builds the upload page (web/) into OUT (web/dist by default): its npm
# packages from the cache (scripts/npm-cached.sh), then one esbuild bundle.
# The result is static: serve it anywhere, or with `partwise-local serve --web OUT`.
#
#   scripts/build-web.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-web/dist}
bash scripts/npm-cached.sh web
mkdir -p "$out"
cp web/src/index.html "$out/"
web/node_modules/.bin/esbuild web/src/main.js --bundle --format=esm --target=chrome120 --minify \
  --log-level=warning --outfile="$out/main.js"
