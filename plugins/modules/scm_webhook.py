#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: scm_webhook
short_description: Create, update or delete the push webhook of a GitHub, GitLab or Gitea repository
version_added: 0.1.0
description:
  - Makes the repository of a GitOps source deliver signed push webhooks to a listener (the
    C(gitops.federation.scm_push) event source of ansible-rulebook, or an AWX job template webhook), through the
    SCM's REST API, idempotently. Several hooks to the same listener URL are reduced to one.
  - "GitHub: a C(web) hook for C(push) events, JSON, signed with the secret (C(X-Hub-Signature-256))."
  - "GitLab: a project hook for push and tag push events, with the secret as its token (C(X-Gitlab-Token))."
  - "Gitea: a C(gitea) hook for C(push) events (branches and tags), JSON, signed with the secret
    (C(X-Gitea-Signature))."
  - The SCMs never return a hook's secret, so the hook URL carries a secret id, C(?gitops-secret-id=<16 hex>)
    (an HMAC of a constant under the secret), and a changed secret updates the hook. The listener ignores the
    query string.
author:
  - gitops.federation maintainers (@gitops-federation)
attributes:
  check_mode:
    support: full
    description: Reads the hooks and reports what would change, writes nothing.
  diff_mode:
    support: none
    description: Reports the differing fields in RV(differences) instead.
options:
  scm:
    description: The SCM of the repository (a source's C(scm) field).
    type: str
    choices: [github, gitlab, gitea]
    required: true
  repository_url:
    description: The repository's URL (a source's C(url)); https, C(ssh://) or C(user@host:path).
    type: str
    required: true
  api_url:
    description:
      - REST API root. Default from O(repository_url) - C(https://api.github.com) for github.com, else
        C(<scheme>://<host>/api/v3) (GitHub Enterprise), C(/api/v4) (GitLab), C(/api/v1) (Gitea). Required with an
        ssh URL, which does not tell the web address.
    type: str
  webhook_url:
    description: The listener URL the SCM posts pushes to.
    type: str
    required: true
  webhook_secret:
    description: The webhook secret shared with the listener.
    type: str
    required: true
  webhook_validate_certs:
    description: Whether the SCM verifies the listener's TLS certificate when it delivers.
    type: bool
    default: true
  token:
    description:
      - API token (GitHub personal access token or app token, GitLab personal/project access token, Gitea access
        token). The webhooks playbook takes it from the source's federated secret (C(bearerToken), else
        C(password)).
    type: str
  username:
    description: User for HTTP basic auth (GitHub and Gitea), with O(password), when there is no O(token).
    type: str
  password:
    description:
      - Password for HTTP basic auth (GitHub and Gitea), with O(username). GitLab's API takes no passwords, so
        there it is used as an access token when O(token) is not given.
    type: str
  validate_certs:
    description: Verify the SCM API's TLS certificate.
    type: bool
    default: true
  ca_path:
    description: CA bundle to verify the SCM API's certificate with.
    type: path
  state:
    description: C(present) creates or updates the hook; C(absent) deletes every hook to O(webhook_url).
    type: str
    choices: [present, absent]
    default: present
notes:
  - Credentials and the secret are sent in request headers or bodies only, and never returned.
  - Tested against a real Gitea; GitHub's and GitLab's requests are checked against a recording HTTP server
    (see docs/webhooks.md).
seealso:
  - module: gitops.federation.push_targets
"""

EXAMPLES = r"""
- name: Deliver pushes of the podinfo repository to the listener
  gitops.federation.scm_webhook:
    scm: github
    repository_url: https://github.com/example/podinfo-deploy.git
    webhook_url: https://eda.example.com/webhooks
    webhook_secret: "{{ lookup('ansible.builtin.file', '/etc/gitops/webhook-secret') }}"
    token: "{{ github_token }}"
  no_log: true

- name: Gitea on a custom port, basic auth
  gitops.federation.scm_webhook:
    scm: gitea
    repository_url: http://gitea.internal:3000/platform/apps.git
    webhook_url: http://eda.internal:5000/
    webhook_secret: "{{ webhook_secret }}"
    username: deployer
    password: "{{ gitea_password }}"
"""

RETURN = r"""
action:
  description: What was done.
  returned: always
  type: str
  sample: created
  choices: [created, updated, unchanged, deleted, absent]
hook_id:
  description: The SCM's id of the hook (none in check mode when it would be created).
  returned: always
  type: int
repository:
  description: The repository path on the SCM.
  returned: always
  type: str
  sample: example/podinfo-deploy
url:
  description: The hook URL, with the secret id.
  returned: always
  type: str
  sample: https://eda.example.com/webhooks?gitops-secret-id=3f2a9c0d1e4b5a6c
differences:
  description: The hook fields that differed (on update).
  returned: when updated
  type: list
  elements: str
"""


from ansible_collections.gitops.federation.plugins.module_utils.cluster_module import main as module_main
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.source.scm_webhooks import (
    ScmApi, default_api_url, ensure_webhook)


def argspec():
    return dict(
        scm=dict(type="str", choices=["github", "gitlab", "gitea"], required=True),
        repository_url=dict(type="str", required=True),
        api_url=dict(type="str"),
        webhook_url=dict(type="str", required=True),
        webhook_secret=dict(type="str", required=True, no_log=True),
        webhook_validate_certs=dict(type="bool", default=True),
        token=dict(type="str", no_log=True),
        username=dict(type="str"),
        password=dict(type="str", no_log=True),
        validate_certs=dict(type="bool", default=True),
        ca_path=dict(type="path"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )


def run_module(module):
    params = module.params
    if not params["webhook_url"].startswith(("http://", "https://")):
        raise FederationError("webhook_url %r must be an http:// or https:// URL" % params["webhook_url"])
    api_url = params["api_url"] or default_api_url(params["scm"], params["repository_url"])
    api = ScmApi(params["scm"], api_url, token=params["token"], username=params["username"],
                 password=params["password"], validate_certs=params["validate_certs"], ca_path=params["ca_path"])
    result = ensure_webhook(api, params["repository_url"], params["webhook_url"], params["webhook_secret"],
                            state=params["state"], validate_certs=params["webhook_validate_certs"],
                            check_mode=module.check_mode)
    module.exit_json(**result)


def main():
    module_main(argspec(), run_module, cluster=False, required_by={"username": "password"})


if __name__ == "__main__":
    main()
