#!/bin/sh
# Builds static/zxcvbn.js from the pinned npm packages of package.json
# (package-lock.json holds their integrity hashes), minified, with the
# packages' licence comments at its end; static/zxcvbn.LICENSE.txt holds
# their licence files. Run it after changing a version here, then
# `go generate ./static/` for the compressed variants, and commit all.
set -eu
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
./node_modules/.bin/esbuild entry.mjs --bundle --minify --format=iife --target=es2018 \
  --legal-comments=eof --outfile=../../zxcvbn.js
{
  echo "static/zxcvbn.js bundles these npm packages (built by static/internal/zxcvbn/build.sh):"
  for p in @zxcvbn-ts/core @zxcvbn-ts/language-common @zxcvbn-ts/language-en @zxcvbn-ts/dictionary-compression fastest-levenshtein; do
    v=$(node -p "require('./node_modules/$p/package.json').version")
    echo
    echo "== $p $v =="
    cat "node_modules/$p/LICENSE"* 2>/dev/null || true
  done
} > ../../zxcvbn.LICENSE.txt
