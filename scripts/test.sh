#!/usr/bin/env bash
# The test command: every test, browser ones included, on the bundled data in ../shared/datasets.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
python3 -m pytest -q -p no:cacheprovider "$@"
