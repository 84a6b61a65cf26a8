#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: git_render
short_description: Fetch a git repository and render a path of it into a validated manifest bundle
version_added: 0.1.0
description:
  - Fetches O(url) into a clone cached per repository URL (later runs fetch incrementally; when the ref still
    points at a commit the cache has, nothing is fetched), resolves O(ref) to a commit and renders O(path) at
    that commit.
  - A directory with a C(kustomization.yaml), C(kustomization.yml) or C(Kustomization) file is rendered with
    C(kustomize build); any other directory is read recursively (C(.yaml), C(.yml) and C(.json) files,
    multi-document YAML, empty documents skipped, other files and hidden files and directories ignored, in
    path order).
  - Manifests are parsed exactly as C(kubectl apply -f) parses them (go-yaml v2 typing, so C(22:22) and C(=)
    stay strings and C(y)/C(n) are booleans); a key repeated in one mapping is an error naming the file and line.
  - Every object is validated (parseable, C(apiVersion), C(kind) and C(metadata.name) present; items of
    C(*List) objects become objects of their own) before the bundle is written to O(dest) as one
    multi-document YAML file, which the apply engine (M(gitops.federation.cluster_sync)) reads.
  - Credentials never appear in arguments of processes, in the cache, in logs, in return values or in error
    messages.
  - Runs on the controller.
author:
  - gitops.federation maintainers (@gitops-federation)
extends_documentation_fragment:
  - gitops.federation.limits
attributes:
  check_mode:
    support: full
    description:
      - Fetches and renders (the cache is updated, it is read-only work for the repository) but does not
        write O(dest); the bundle is written to a temporary file returned as RV(bundle) so that a following
        task in check mode can dry-run it.
  diff_mode:
    support: full
    description:
      - The diff lists the objects (kind, namespace and name) of the previous and the new bundle, never their
        content, since bundles may hold Secrets.
options:
  url:
    description:
      - URL of the git repository, C(https://), C(http://), C(ssh://) or scp-like C(git@host:org/repo.git).
      - C(file://) URLs and absolute paths are refused unless O(allow_local_urls) is set. C(git://) (neither
        authenticated nor encrypted) and git remote helpers (C(ext::), C(fd::)...) are always refused.
      - Credentials embedded in an HTTP(S) URL (C(https://user:token@host/...)) are taken out of it and used
        like O(username) and O(password), so git and the cache only see the URL without them. Ansible itself
        shows O(url) in its output though (it is not a C(no_log) option), so prefer O(username) and O(password).
    type: str
    required: true
  ref:
    description:
      - What to check out. At most one of the keys; without any, the remote's default branch (its C(HEAD)).
    type: dict
    suboptions:
      branch:
        description: A branch name, for example V(main).
        type: str
      tag:
        description: A tag name, for example V(v1.2.0).
        type: str
      semver:
        description:
          - An npm version range; the highest tag matching it is checked out. Tags may carry a leading C(v).
          - Comparators C(>=), C(>), C(<=), C(<), C(=) joined by spaces or commas (all must hold) and C(||)
            (either side may hold), C(~1.2.3) (patch updates), C(^1.2.3) (no change of the left-most non-zero
            number), x-ranges C(1.2.x), C(1.x) and hyphen ranges C(1.2.3 - 2.0.0).
          - Pre-release tags (C(1.3.0-rc.1)) are picked only when a comparator of the same alternative names a
            pre-release of the same version, for example V(>=1.3.0-0 <2.0.0) (npm's rule).
        type: str
      commit:
        description: A commit SHA (full, or at least 7 hex digits of one).
        type: str
  path:
    description:
      - Directory to render, relative to the repository root. A leading C(/) also means the repository root.
      - It must resolve inside the repository; C(..) above the root and symlinks leading out are refused.
    type: str
    default: .
  dest:
    description:
      - Where to write the bundle file (mode C(0600)). Parent directories are created.
      - The file is rewritten only when its content changes.
    type: path
    required: true
  username:
    description: User name for HTTP(S) basic authentication.
    type: str
  password:
    description:
      - Password or access token for HTTP(S) basic authentication (with O(username)).
    type: str
  bearer_token:
    description: "Token sent as C(Authorization: Bearer <token>) to HTTP(S) servers that accept bearer tokens."
    type: str
  ssh_private_key:
    description:
      - Private key (its content, not a path) for SSH URLs, without a passphrase. It is written to a C(0600)
        file in a private directory under O(cache_dir) only while git runs.
    type: str
  known_hosts:
    description:
      - Content of a C(known_hosts) file with the SSH server's host key. Host keys are always checked; without
        this option the user's C(~/.ssh/known_hosts) is used.
    type: str
  ca_file:
    description:
      - CA certificate (PEM content, not a path) that signed the HTTPS server's certificate, for servers with a
        private CA. git then trusts this CA only, not the system's CAs, for this repository.
      - It is written to a C(0600) file in a private directory only while git runs.
    type: str
  insecure_skip_host_key_check:
    description:
      - Do not check the SSH server's host key. Anyone on the network path can then impersonate the server.
    type: bool
    default: false
  secret_data:
    description:
      - Credentials as the decoded data of a secret with Flux's key names C(username), C(password),
        C(bearerToken), C(caFile), C(identity) (SSH private key) and C(known_hosts); C(identity.pub) is ignored.
      - The options O(username), O(password), O(bearer_token), O(ca_file), O(ssh_private_key) and
        O(known_hosts) override the matching keys.
      - A Kubernetes Secret's C(data) is base64-encoded; decode it first, see the examples.
    type: dict
  substitute:
    description:
      - Variables for Flux-style post-build substitution in the rendered objects. C(${VAR}) is replaced with
        the value of VAR, C(${VAR:=default}) and C(${VAR:-default}) with the value or, when VAR is not set or
        empty, the default; C($${VAR}) is the escape for a literal C(${VAR}).
      - A C(${VAR}) without a default whose VAR is not given is an error naming the variable and the object
        (Flux's strict mode), so a typo never deploys an empty string.
      - Substitution works on each object's YAML text, so V(${REPLICAS:=2}) in C(replicas:) becomes the number
        2. Objects annotated C(kustomize.toolkit.fluxcd.io/substitute=disabled) are left alone.
      - Without variables (unset or empty) no substitution takes place.
    type: dict
  ignore:
    description:
      - Paths of the repository to leave out before rendering, in C(.gitignore) syntax with git's own rules
        (one pattern a line, C(#) comments, C(!) to re-include, a trailing C(/) for directories only, a C(/)
        inside anchors the pattern at the repository root, C(*) within one directory, C(**) across them), as the
        C(ignore) of a FederatedGitRepository.
    type: str
  allow_local_urls:
    description:
      - Accept C(file://) URLs and absolute paths, which read repositories from the controller's own disk.
      - Off by default, because whoever can set O(url) (a tenant editing a source) could otherwise make the
        controller read any repository it can read. Meant for tests and demos, set by the operator (the sync
        playbooks take it from the inventory variable C(gitops_allow_local_urls)).
    type: bool
    default: false
  cache_dir:
    description:
      - Directory of the clone cache, one clone per repository URL in a subdirectory named after the sha256 of
        the URL without credentials.
      - Credential files exist only while git runs, in private (C(0700)) directories under
        C(<cache_dir>/.credentials); a run removes those left by runs that were killed.
      - Defaults to C($GITOPS_FEDERATION_CACHE/git), else C(~/.cache/gitops-federation/git).
    type: path
  kustomize_path:
    description:
      - The kustomize binary. Defaults to C(kustomize) on C(PATH), else the collection's tooling cache
        C(~/.cache/gitops-federation/bin/*/kustomize).
    type: path
  timeout:
    description:
      - Seconds allowed for the git work (waiting for another run on the same repository included), and
        separately for C(kustomize build).
    type: int
    default: 120
notes:
  - The git CLI (2.32 or later) must be installed on the controller, and OpenSSH for SSH URLs.
  - Every run proves access with the given credentials (one C(git ls-remote)), also for a O(ref.commit) the
    cache already has, so a clone fetched for one source is never rendered for a source without access.
  - git and kustomize run with a minimal environment (C(PATH) and the locale; C(HOME) a private empty
    directory). The user's global and system git configuration, C(GIT_*) variables, SSH agent, SSH keys and
    config, and credential helpers are not used, and git never prompts.
  - Submodules are not checked out. Kustomize remote resources (URLs or git repositories in C(resources),
    C(components)...) are refused with an error naming the kustomization file; kustomize runs without network
    credentials and with C(--load-restrictor LoadRestrictionsRootOnly).
requirements:
  - git >= 2.32
  - PyYAML
seealso:
  - module: gitops.federation.cluster_sync
"""

EXAMPLES = r"""
- name: Render the production overlay of a tag range over HTTPS
  gitops.federation.git_render:
    url: https://git.example.com/platform/apps.git
    ref:
      semver: ">=1.2.0 <2.0.0"
    path: overlays/production
    username: deploy
    password: "{{ git_token }}"
    dest: /var/lib/gitops/apps/bundle.yaml
  register: rendered

- name: Render a branch over SSH with a deploy key, substituting per-cluster values
  gitops.federation.git_render:
    url: ssh://git@git.example.com/platform/apps.git
    ref:
      branch: main
    path: clusters/common
    ssh_private_key: "{{ lookup('file', 'deploy_key') }}"
    known_hosts: "{{ lookup('file', 'git_known_hosts') }}"
    substitute:
      CLUSTER_NAME: "{{ inventory_hostname }}"
      REPLICAS: 3
    dest: "/tmp/gitops/{{ inventory_hostname }}.yaml"

- name: Use the credentials of a Flux-style secret read with kubernetes.core.k8s_info
  gitops.federation.git_render:
    url: "{{ source.url }}"
    ref: "{{ source.ref }}"
    path: "{{ source.path }}"
    # Secret data is base64-encoded: decode every value.
    secret_data: "{{ dict(secret.data.keys() | zip(secret.data.values() | map('b64decode'))) }}"
    dest: /tmp/gitops/source.yaml
  vars:
    secret: "{{ git_secret.resources[0] }}"
"""

RETURN = r"""
revision:
  description: The ref and the commit it resolved to, as Flux writes it (V(sha1:<sha>) for a commit ref).
  returned: success
  type: str
  sample: main@sha1:3c1e2d8a4f0b6e7d9c5a1b2f3e4d5c6b7a8f9e0d
commit:
  description: The full SHA of the rendered commit.
  returned: success
  type: str
  sample: 3c1e2d8a4f0b6e7d9c5a1b2f3e4d5c6b7a8f9e0d
ref:
  description: The branch or tag that was resolved (the chosen tag for a semver range); empty for a commit.
  returned: success
  type: str
  sample: v1.4.2
bundle:
  description:
    - The file holding the rendered bundle, O(dest), except in check mode, where it is a temporary file.
  returned: success
  type: str
  sample: /var/lib/gitops/apps/bundle.yaml
dest:
  description: Where the bundle is (or in check mode would be) written.
  returned: success
  type: str
  sample: /var/lib/gitops/apps/bundle.yaml
objects:
  description: Number of objects in the bundle.
  returned: success
  type: int
  sample: 12
digest:
  description: sha256 digest of the bundle file's content.
  returned: success
  type: str
  sample: sha256:9f2c0c0e6b2b4d7a1e3f5a8c9d0b1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d
fetched:
  description: Whether anything was fetched from the remote; V(false) when the cache already had the commit.
  returned: success
  type: bool
  sample: false
render_method:
  description: How the path was rendered.
  returned: success
  type: str
  choices: [kustomize, plain]
  sample: kustomize
cache:
  description: The cached clone used (its C(.git/config) holds the URL without credentials).
  returned: success
  type: str
  sample: /home/user/.cache/gitops-federation/git/0c6f1e9a3b2d4c5e6f7a8b9c0d1e2f3a
"""

import os
import tempfile

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.gitops.federation.plugins.module_utils.cluster_module import main as module_main
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.source.git_fetch import (
    LIMITS_ARG_SPEC, GitCredentials, GitSource)
from ansible_collections.gitops.federation.plugins.module_utils.source.manifest_yaml import HAS_YAML, YAML_IMPORT_ERROR
from ansible_collections.gitops.federation.plugins.module_utils.apply.objects import load_bundle
from ansible_collections.gitops.federation.plugins.module_utils.source.render import (
    Manifest,
    bundle_changed,
    digest,
    dump_bundle,
    render_directory,
    write_bundle,
)


def argspec():
    return dict(
        url=dict(type="str", required=True),
        ref=dict(type="dict", options=dict(
            branch=dict(type="str"),
            tag=dict(type="str"),
            semver=dict(type="str"),
            commit=dict(type="str"),
        ), mutually_exclusive=[["branch", "tag", "semver", "commit"]]),
        path=dict(type="str", default="."),
        dest=dict(type="path", required=True),
        username=dict(type="str"),
        password=dict(type="str", no_log=True),
        bearer_token=dict(type="str", no_log=True),
        ssh_private_key=dict(type="str", no_log=True),
        known_hosts=dict(type="str"),
        ca_file=dict(type="str"),
        insecure_skip_host_key_check=dict(type="bool", default=False),
        secret_data=dict(type="dict", no_log=True),
        substitute=dict(type="dict"),
        ignore=dict(type="str"),
        allow_local_urls=dict(type="bool", default=False),
        cache_dir=dict(type="path"),
        kustomize_path=dict(type="path"),
        timeout=dict(type="int", default=120),
        **LIMITS_ARG_SPEC
    )


def _identities(objects):
    return "".join(Manifest(obj, "").identity + "\n" for obj in objects or [])


def run_module(module):
    params = module.params
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"), exception=str(YAML_IMPORT_ERROR))
    credentials = GitCredentials.from_secret_data(
        params["secret_data"],
        username=params["username"], password=params["password"], bearer_token=params["bearer_token"],
        ssh_private_key=params["ssh_private_key"], known_hosts=params["known_hosts"], ca_file=params["ca_file"],
        insecure_skip_host_key_check=params["insecure_skip_host_key_check"],
    )
    if params["timeout"] <= 0:
        raise FederationError("timeout must be a positive number of seconds")
    source = GitSource(params["url"], credentials, cache_dir=params["cache_dir"], timeout=params["timeout"],
                       allow_local_urls=params["allow_local_urls"], limits=params["limits"])
    with source.checkout(params["ref"]) as checkout:
        rendered = render_directory(checkout.path, params["path"], substitute=params["substitute"],
                                    kustomize_path=params["kustomize_path"], timeout=params["timeout"],
                                    ignore=params["ignore"], limits=params["limits"])
    if checkout.rebuilt_because:
        module.warn("the git cache %s was rebuilt because %s" % (checkout.path, checkout.rebuilt_because))

    text = dump_bundle(rendered.objects)
    dest = os.path.abspath(params["dest"])
    diff = None
    if module._diff:
        diff = dict(before_header=dest, after_header=dest, before=_identities(load_bundle(dest, default=None)),
                    after=_identities(rendered.objects))
    if module.check_mode:
        changed = bundle_changed(text, dest)
        fd, bundle = tempfile.mkstemp(prefix="gitops-federation-check-", suffix=".yaml")
        with os.fdopen(fd, "w") as handle:  # mkstemp files are 0600
            handle.write(text)
    else:
        changed = write_bundle(text, dest)
        bundle = dest
    result = dict(
        changed=changed, revision=checkout.revision, commit=checkout.commit, ref=checkout.ref_name or "",
        bundle=bundle, dest=dest, objects=len(rendered.objects), digest=digest(text), fetched=checkout.fetched,
        render_method=rendered.method, cache=checkout.path,
    )
    if diff is not None:
        result["diff"] = diff
    return result


def main():
    module_main(argspec(), run_module, cluster=False)


if __name__ == "__main__":
    main()
