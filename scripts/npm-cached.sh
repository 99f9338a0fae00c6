#!/usr/bin/env bash
# npm packages of one folder (e2e/ or web/), installed once per lock file under
# $PARTWISE_CACHE/<folder>-<hash of package-lock.json> and linked as
# <folder>/node_modules, so fresh clones, CI and later runs share one install.
#
#   scripts/npm-cached.sh FOLDER
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:?usage: scripts/npm-cached.sh FOLDER}
CACHE="${PARTWISE_CACHE:-$HOME/.cache/partwise}"
command -v npm >/dev/null || { echo "npm-cached: npm is missing (install Node.js 20 or later)" >&2; exit 1; }

hash=$(sha256sum "$dir/package-lock.json" | cut -c1-16)
modules="$CACHE/$(basename "$dir")-$hash"
if [ ! -f "$modules/.done" ]; then
  echo "npm-cached: npm ci into $modules (once per lock file)" >&2
  # A private folder renamed into place: a half-done install is never taken for
  # done, and a concurrent run that finished first is kept.
  tmp="$modules.tmp.$$"
  rm -rf "$tmp" && mkdir -p "$tmp"
  cp "$dir/package.json" "$dir/package-lock.json" "$tmp/"
  (cd "$tmp" && npm ci --no-audit --no-fund --loglevel=error >&2)
  touch "$tmp/.done"
  [ -f "$modules/.done" ] || rm -rf "$modules"
  mv -T "$tmp" "$modules" 2>/dev/null || rm -rf "$tmp"
fi
# Only ever our link or a leftover local install (gitignored): safe to replace.
if [ "$(readlink "$dir/node_modules" 2>/dev/null)" != "$modules/node_modules" ]; then
  rm -rf "$dir/node_modules"
  ln -s "$modules/node_modules" "$dir/node_modules"
fi
