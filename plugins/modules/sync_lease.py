#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: sync_lease
short_description: Take or release the per-source sync Lease on the management cluster
version_added: 0.1.0
description:
  - Two syncs of the same GitOps source must not interleave. The sync playbook takes a
    C(coordination.k8s.io/v1) Lease named C(gitops-sync-<source>) in the project namespace before touching any
    cluster and releases it at the end.
  - The Lease expires O(duration) seconds after it was last renewed, so a run that crashed does not lock the
    source forever; taking an expired Lease is safe against races (the write carries the resourceVersion read).
  - When another run holds a live Lease the module fails, naming the holder, when it took the Lease and when it
    expires.
author:
  - gitops.federation maintainers (@gitops-federation)
extends_documentation_fragment:
  - gitops.federation.cluster_auth
attributes:
  check_mode:
    support: full
    description: Reports whether the Lease could be taken or released; writes nothing.
  diff_mode:
    support: none
    description: The Lease is bookkeeping, not managed state; there is nothing to diff.
options:
  namespace:
    description: The project namespace (on the management cluster) holding the Lease.
    type: str
    required: true
  source:
    description:
      - Name of the GitOps source the Lease guards (Lease C(gitops-sync-<source>)).
      - When omitted, the Lease guards the project's federated secrets (Lease C(gitops-secrets-sync)), which every
        sync of the project propagates.
    type: str
  holder:
    description:
      - Identity of this run, shown to any other run that finds the Lease taken, for example
        C(awx-job-1234@controller-1).
    type: str
    required: true
  state:
    description: V(acquired) takes or renews the Lease; V(released) gives it up if this O(holder) has it.
    type: str
    choices: [acquired, released]
    default: acquired
  duration:
    description: Seconds after the last renewal at which the Lease expires.
    type: int
    default: 900
  wait_timeout:
    description: Seconds to wait for a Lease held by another run before failing.
    type: int
    default: 0
"""

EXAMPLES = r"""
- name: Take the lease for podinfo, waiting up to a minute for another run to finish
  gitops.federation.sync_lease:
    kubeconfig: /etc/clusters/management.kubeconfig
    namespace: team-a
    source: podinfo
    holder: "awx-job-{{ awx_job_id | default('manual') }}"
    wait_timeout: 60

- name: Release it
  gitops.federation.sync_lease:
    kubeconfig: /etc/clusters/management.kubeconfig
    namespace: team-a
    source: podinfo
    holder: "awx-job-{{ awx_job_id | default('manual') }}"
    state: released
"""

RETURN = r"""
lease:
  description: Name of the Lease.
  returned: always
  type: str
  sample: gitops-sync-podinfo
holder:
  description: Who holds the Lease after this task (empty after a release), or who blocks us when the task fails.
  returned: always
  type: str
  sample: awx-job-1234
"""

from ansible_collections.gitops.federation.plugins.module_utils.cluster_module import main as module_main
from ansible_collections.gitops.federation.plugins.module_utils.federation.lease import SyncLease


def argspec():
    return dict(
        namespace=dict(type="str", required=True),
        source=dict(type="str"),
        holder=dict(type="str", required=True),
        state=dict(type="str", choices=["acquired", "released"], default="acquired"),
        duration=dict(type="int", default=900),
        wait_timeout=dict(type="int", default=0),
    )


def run_module(module):
    params = module.params
    lease = SyncLease(module.client(), params["namespace"], params["source"], params["holder"],
                      params["duration"])
    if params["state"] == "released":
        changed = lease.release(check_mode=module.check_mode)
        module.exit_json(changed=changed, lease=lease.name, holder="")
    changed, unused_spec = lease.acquire(params["wait_timeout"], check_mode=module.check_mode)
    module.exit_json(changed=changed, lease=lease.name, holder=params["holder"])


def main():
    module_main(argspec(), run_module)


if __name__ == "__main__":
    main()
