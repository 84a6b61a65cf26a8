"""An inventory past the 1 MiB object limit is sharded over several ConfigMaps (module_utils/apply/inventory.py).

3,200 ConfigMaps with 253-character names make an inventory of about 1.1 MiB: one ConfigMap cannot hold it (the
API server refuses objects over 1 MiB, and the sync failed half-way, after applying everything). Through the
public module cluster_sync against a real kube-apiserver: sync, re-sync with no change, prune back to one
shard, tear down. Assertions read the cluster with the kubernetes client.
"""

import json

from playbook import run_module

INVENTORY_LABEL = "gitops.federation/inventory"
OWNER_LABEL = "gitops.federation/owner"
MIB = 1024 * 1024
COUNT = 3200


def _name(index):
    return ("cm-%05d-" % index).ljust(253, "x")


def _bundle(count):
    return [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": _name(i)}, "data": {"i": str(i)}}
            for i in range(count)]


def _sync(cluster, namespace, manifests, **args):
    params = dict(kubeconfig=cluster.kubeconfig, owner="gitops/%s/many" % namespace, namespace=namespace,
                  manifests=manifests)
    params.update(args)
    result, unused_run = run_module("gitops.federation.cluster_sync", params)
    assert not result.get("failed"), str(result.get("msg"))[:2000]
    return result


def _shards(client, namespace):
    """{name: data} of the inventory ConfigMaps in the namespace."""
    items = client.resources.get(api_version="v1", kind="ConfigMap").get(
        namespace=namespace, label_selector="%s=true" % INVENTORY_LABEL).to_dict()["items"]
    return dict((i["metadata"]["name"], i["data"]) for i in items)


def _listed(shards):
    return sorted(e["name"] for data in shards.values() for e in json.loads(data["entries"]))


def _live(client, namespace):
    items = client.resources.get(api_version="v1", kind="ConfigMap").get(
        namespace=namespace, label_selector=OWNER_LABEL).to_dict()["items"]
    return sorted(i["metadata"]["name"] for i in items if INVENTORY_LABEL not in i["metadata"]["labels"])


def test_an_inventory_past_1_mib_is_sharded_synced_again_pruned_and_torn_down(clusters, admin_clients, namespace):
    cluster = clusters[0]
    client = admin_clients[cluster.name]

    first = _sync(cluster, namespace, _bundle(COUNT))
    assert first["counts"]["created"] == COUNT, first["counts"]
    shards = _shards(client, namespace)
    head = first["inventory"]["name"]
    assert len(shards) >= 3 and head in shards, sorted(shards)
    assert sorted(shards) == sorted([head] + ["%s-%d" % (head, i) for i in range(1, len(shards))])
    assert shards[head]["shards"] == str(len(shards))
    assert sum(len(d["entries"]) for d in shards.values()) > MIB, "the inventory would not fit one ConfigMap"
    assert all(len(d["entries"]) <= MIB // 2 for d in shards.values()), "512 KiB of entries per shard at most"
    assert _listed(shards) == _live(client, namespace) == sorted(_name(i) for i in range(COUNT))
    assert first["inventory"]["objects"] == COUNT

    again = _sync(cluster, namespace, _bundle(COUNT))
    assert again["changed"] is False and again["api_requests"]["writes"] == 0, again["api_requests"]
    # one read of the inventory whatever its shards: discovery (2) + namespace (1) + inventory LIST (1) + the live
    # ConfigMaps by owner label, 500 a page (objects and shards)
    pages = -(-(COUNT + len(shards)) // 500)
    assert again["api_requests"]["GET"] <= 4 + pages, again["api_requests"]
    assert _shards(client, namespace) == shards

    pruned = _sync(cluster, namespace, _bundle(100))
    assert pruned["counts"]["pruned"] == COUNT - 100, pruned["counts"]
    shards = _shards(client, namespace)
    assert list(shards) == [head], "the shards no longer needed are deleted"
    assert "shards" not in shards[head], "one shard is the single-ConfigMap format of earlier releases"
    assert _listed(shards) == _live(client, namespace) == sorted(_name(i) for i in range(100))

    gone = _sync(cluster, namespace, [], state="absent")
    assert gone["counts"]["deleted"] == 100, gone["counts"]
    assert _shards(client, namespace) == {} and _live(client, namespace) == []
