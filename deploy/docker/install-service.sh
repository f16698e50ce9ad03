#!/bin/sh
# Installs one service and only what it needs (its locked third-party dependencies, the shared
# libs, the service) into a fresh virtualenv. Used by the Dockerfile; runs anywhere uv does.
#   sh deploy/docker/install-service.sh ingest /opt/recupero-ingest
set -eu
service="$1"
target="$2"
wheels="$(mktemp -d)"
uv export --frozen --no-dev --package "recupero-${service}" --no-emit-workspace --no-hashes \
  --quiet -o "${wheels}/requirements.txt"
for package in events runtime "${service}"; do
  uv build --quiet --wheel --package "recupero-${package}" -o "${wheels}"
done
python3 -m venv "${target}"
"${target}/bin/pip" install --quiet --no-cache-dir -r "${wheels}/requirements.txt"
"${target}/bin/pip" install --quiet --no-cache-dir --no-deps "${wheels}"/recupero_*.whl
rm -rf "${wheels}"
