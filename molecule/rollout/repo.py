"""The rollout scenario's git repository rollout-web (a Deployment web), on the git servers create.yml started.

    python molecule/rollout/repo.py STATE_DIR good   create the repository with the good revision (image web:1)
    python molecule/rollout/repo.py STATE_DIR bad    push the bad revision (image web:2, Pods never ready), once

Prints the commit of the branch's head, then "changed" or "unchanged" (for changed_when).
"""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from tools.localenv.gitserver import GitServers  # noqa: E402 (the repository root is put on sys.path first)

REPO = "rollout-web"
PATH = "app/web.yaml"


def deployment(image, fail=None):
    labels = "app: web" + ("\n        kwok.gitops.federation/fail: %s" % fail if fail else "")
    return """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  progressDeadlineSeconds: 8
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        %s
    spec:
      containers:
        - name: web
          image: %s
""" % (labels, image)


def main(state, revision):
    servers = GitServers.load(os.path.join(state, "git"))
    bare = os.path.join(servers.repos_dir, REPO + ".git")
    wanted = deployment("web:1") if revision == "good" else deployment("web:2", fail="never-ready")
    if not os.path.isdir(bare):
        if revision != "good":
            sys.exit("the repository %s does not exist: run with 'good' first" % REPO)
        sha, changed = servers.create_repo(REPO, files={PATH: wanted}), True
    else:
        current = subprocess.run(["git", "--git-dir", bare, "show", "main:" + PATH], capture_output=True, text=True,
                                 check=True).stdout
        changed = current != wanted and revision == "bad"
        if changed:
            servers.commit(REPO, files={PATH: wanted}, message="web:2, whose Pods never become ready")
        sha = subprocess.run(["git", "--git-dir", bare, "rev-parse", "main"], capture_output=True, text=True,
                             check=True).stdout.strip()
    print(sha)
    print("changed" if changed else "unchanged")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
