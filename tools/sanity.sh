#!/usr/bin/env bash
# ansible-test sanity on the collection exactly as it would be published: build the artifact (which
# honours galaxy.yml build_ignore), unpack it under ansible_collections/gitops/federation, test there.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV:-$root/.venv}
work=$root/.build/sanity
rm -rf "$work" "$root/.build/dist"
mkdir -p "$work/ansible_collections/gitops/federation" "$root/.build/dist"
"$venv/bin/ansible-galaxy" collection build --force --output-path "$root/.build/dist" "$root" >/dev/null
tar -xzf "$root"/.build/dist/gitops-federation-*.tar.gz -C "$work/ansible_collections/gitops/federation"
cd "$work/ansible_collections/gitops/federation"
# ansible-test lists files through git; a repository of its own keeps the outer one (which ignores
# .build/) out of the picture.
git init -q . && echo "tests/output/" > .gitignore && git add -A

# --venv: every sanity test runs in a virtualenv ansible-test builds with the linters it pins (cached in
# ~/.ansible/test), independent of the developer venv. Its pip bootstrap script is provided locally.
pip_version=$("$venv/bin/python" -c 'import re, ansible_test, os
path = os.path.join(os.path.dirname(ansible_test.__file__), "_internal", "python_requirements.py")
print(re.search(r"pip=.([0-9.]+).", open(path).read()).group(1))')
mkdir -p ~/.ansible/test/cache
cp "$root/tools/ansible-test-get-pip.py" ~/.ansible/test/cache/get_pip_${pip_version//./_}.py
PATH="$venv/bin:$PATH" "$venv/bin/ansible-test" sanity --venv --python 3.11 --color no "$@"
