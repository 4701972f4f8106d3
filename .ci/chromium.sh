#!/usr/bin/env bash
# Make sure Debian's chromium (and a CJK font for the Chinese page text) is installed for the
# browser tests in tests/web, which drive /usr/bin/chromium through Playwright's executable
# path (Playwright never downloads a browser of its own here).
#
#   bash .ci/chromium.sh
#
# Installs with apt only what is missing; progress goes to stderr. Under CI=true the browser
# tests fail (rather than skip) when /usr/bin/chromium is absent, so run this before `make test`.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
say() { echo "chromium.sh: $*" >&2; }

missing=()
[ -x "$CHROMIUM" ] || missing+=(chromium)
if ! command -v fc-list >/dev/null 2>&1 || [ -z "$(fc-list :lang=zh 2>/dev/null | head -n 1)" ]; then
  missing+=(fonts-wqy-microhei)
fi

if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
[ -x "$CHROMIUM" ] || { say "$CHROMIUM not found after install"; exit 1; }
say "ready: $("$CHROMIUM" --version 2>/dev/null | tail -n 1)"
