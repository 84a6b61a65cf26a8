"""Differential test: every manifest of the corpus is parsed by the collection and by the real kubectl.

``fixtures/yaml_corpus/`` holds documents where YAML parsers disagree (YAML 1.1 base 60, ``=``, timestamps,
y/n booleans, octal, merge keys, aliases, duplicate keys, number ranges, NaN, non-string keys, block
scalars, unicode, very long strings, document separators, lists, JSON streams...). Each file is given to
``kubectl create --dry-run=client -o json -f`` against a real local API server (kubectl needs discovery to
map kinds; nothing is written) and to ``manifest_yaml``: the objects must be equal, or both must refuse. Types
are observed in a CRD whose spec keeps unknown fields of any type, and in ConfigMaps.

The intended differences are listed in STRICTER: files kubectl accepts and we refuse, naming the file and line
(never the other way round, and never a different value).
"""

import glob
import json
import os
import subprocess

import pytest

from ansible_collections.gitops.federation.plugins.module_utils.source import manifest_yaml
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from tools.localenv.binaries import binary

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "yaml_corpus")
FILES = sorted(os.path.basename(path) for path in glob.glob(os.path.join(CORPUS, "*")))
# kubectl accepts these, we refuse them (naming file and line): a repeated key, which kubectl resolves silently
# to the last value, and syntax libyaml 0.2 rejects where go-yaml's older scanner reads something odd.
STRICTER = {"23-duplicate-keys.yaml", "59-tag-no-space.yaml"}
NAMESPACE = "yaml-corpus"  # kubectl sets it on namespaced objects that have none; it is no part of parsing
GROUP = "corpus.gitops.test"
CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "yamlprobes." + GROUP},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": "yamlprobes", "singular": "yamlprobe", "kind": "YamlProbe", "listKind": "YamlProbeList"},
        "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
            "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}],
    },
}


def kubectl(kubeconfig, *args, stdin=None):
    return subprocess.run([binary("kubectl"), "--kubeconfig", kubeconfig] + list(args), input=stdin,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def kubeconfig(clusters):
    config = clusters[0].kubeconfig
    applied = kubectl(config, "apply", "-f", "-", stdin=json.dumps(CRD))
    assert applied.returncode == 0, applied.stderr
    established = kubectl(config, "wait", "--for=condition=Established", "--timeout=60s",
                          "crd/yamlprobes." + GROUP)
    assert established.returncode == 0, established.stderr
    return config


def _int64_or_float(text):
    """JSON numbers as the API machinery reads them (int64 when it can, else float64)."""
    value = int(text)
    return value if -(1 << 63) <= value < (1 << 63) else float(text)


def kubectl_objects(kubeconfig, path):
    """The objects kubectl would send for path, or None and its error when it refuses the file."""
    result = kubectl(kubeconfig, "create", "--dry-run=client", "-o", "json", "--namespace", NAMESPACE, "-f", path)
    if result.returncode != 0:
        return None, result.stderr.strip()
    decoder = json.JSONDecoder(parse_int=_int64_or_float)
    objects, position, text = [], 0, result.stdout
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            break
        value, position = decoder.raw_decode(text, position)
        # several objects are printed as one v1 List
        objects.extend(value["items"] if value.get("kind") == "List" and "metadata" in value
                       and not value.get("metadata", {}).get("name") else [value])
    return objects, None


def our_objects(path):
    try:
        return manifest_yaml.expand_lists(manifest_yaml.load_file(path, os.path.basename(path))), None
    except FederationError as err:
        return None, err


def test_the_corpus_is_large_enough():
    assert len(FILES) >= 40


@pytest.mark.parametrize("name", FILES)
def test_parsed_as_kubectl_parses_it(kubeconfig, name):
    path = os.path.join(CORPUS, name)
    theirs, their_error = kubectl_objects(kubeconfig, path)
    ours, our_error = our_objects(path)
    if name in STRICTER:
        assert theirs is not None, their_error
        assert our_error is not None and name in our_error.msg and our_error.details.get("line"), our_error
        return
    if theirs is None:
        assert ours is None, "kubectl refuses %s (%s) but we parse it as %s" % (name, their_error, ours)
        assert name in our_error.msg
        return
    assert ours is not None, "kubectl parses %s but we refuse it: %s" % (name, our_error)
    for mine, kubectls in zip(ours, theirs):
        if "namespace" not in mine.get("metadata", {}) and kubectls.get("metadata", {}).get("namespace") == NAMESPACE:
            del kubectls["metadata"]["namespace"]
    assert json.dumps(ours, sort_keys=True) == json.dumps(theirs, sort_keys=True)
    assert ours == theirs
