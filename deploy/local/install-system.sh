#!/usr/bin/env bash
# Installs what the project needs from the system's package manager and PyPI, only if missing:
# uv, PostgreSQL (Debian's package), a JDK and Maven (to fetch Kafka from Maven Central), Node.js
# and npm (for the official AsyncAPI schemas used in tests). Safe to run again.
set -euo pipefail

need=()
command -v java >/dev/null || need+=(default-jdk-headless)
command -v mvn >/dev/null || need+=(maven)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing system packages: ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
if ! command -v uv >/dev/null; then
  echo "installing uv from PyPI"
  python3 -m pip install --quiet uv
fi
