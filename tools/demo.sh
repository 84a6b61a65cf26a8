#!/usr/bin/env bash
# make demo: local management + attached clusters and a git server holding an example repository.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
py=.venv/bin/python
$py -m tools.localenv clusters-down >/dev/null 2>&1 || true
$py -m tools.localenv git-down >/dev/null 2>&1 || true
$py -m tools.localenv clusters-up --names management,attached-1,attached-2
$py -m tools.localenv git-up
echo
echo "Clusters and git servers are up. The sync playbook does not exist yet; stop everything with: make demo-down"
