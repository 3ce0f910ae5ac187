#!/usr/bin/env bash
# Installs the Debian packages listed in tools/debian-packages.txt whose command is missing.
# Run by `make test`; needs root (or sudo) only when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
while read -r package command _; do
    [[ -z "${package}" || "${package}" == \#* ]] && continue
    command -v "${command}" >/dev/null 2>&1 || missing+=("${package}")
done < tools/debian-packages.txt
[[ ${#missing[@]} -eq 0 ]] && exit 0
echo "installing Debian packages the tests need: ${missing[*]}"
sudo=""
[[ "$(id -u)" -ne 0 ]] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
${sudo} apt-get update -qq
${sudo} apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
