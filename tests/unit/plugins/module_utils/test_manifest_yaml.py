"""The manifest loader: kubectl's typing of scalars, documents, aliases, merges, lists and errors.

The same cases are checked against the real kubectl in tests/integration/test_yaml_corpus.py; these pin the
rules without a cluster.
"""
# pylint: disable=unidiomatic-typecheck  # exact types matter here: True is not 1, 1 is not 1.0

import json

import pytest

from ansible_collections.gitops.federation.plugins.module_utils.source import manifest_yaml
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.apply.objects import load_bundle, stamp_owner

HEADER = "apiVersion: v1\nkind: X\nmetadata: {name: a}\n"


def spec(text):
    (obj,) = manifest_yaml.load_all(HEADER + "spec:\n" + text, "m.yaml")
    return obj["spec"]


def value(scalar):
    return spec("  v: %s\n" % scalar)["v"]


@pytest.mark.parametrize("scalar, expected", [
    ("22:22", "22:22"), ("190:20:30", "190:20:30"), ("=", "="),
    ("2021-01-27 02:06:03", "2021-01-27 02:06:03"), ("2021-01-27", "2021-01-27"),
    ("y", True), ("Y", True), ("yes", True), ("On", True), ("n", False), ("NO", False), ("off", False),
    ("yES", "yES"), ("'y'", "y"),
    ("0755", 493), ("0o755", 493), ("08", 8), ("09.5", 9.5), ("0x1F", 31), ("0b101", 5), ("-0b101", -5),
    ("0b-101", -5), ("+1", 1), ("1_000", 1000), ("1e3", 1000), (".5", 0.5), ("1.0", 1), ("1.", 1),
    ("1e400", "1e400"), ("1e-400", 0), ("0x", "0x"), ("0x1p-2", "0x1p-2"), ("1__0", 10), ("_1", "_1"),
    ("~", None), ("null", None), ("Null", None), ("NULL", None), ("", None), ("nUll", "nUll"),
    ("9223372036854775807", 9223372036854775807), ("9223372036854775808", 9223372036854775808.0),
    ("18446744073709551615", 18446744073709551615.0), ("99999999999999999999999", 1e23),
    ("1234567891234567890.1", 1234567891234568000),
    ("NaN", "NaN"), (".iNf", ".iNf"), ("${VAR}", "${VAR}"),
])
def test_scalars_are_typed_as_kubectl_types_them(scalar, expected):
    result = value(scalar)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize("text, expected", [
    ("!!str 123", "123"), ('!!int "42"', 42), ("!!float 3", 3), ("!!bool yes", True),
    ("!!binary aGVsbG8=", "hello"), ("!!timestamp 2001-01-01", "2001-01-01"), ("!foo bar", "bar"),
    ("! 12", "12"), ("!!set {a, b}", {"a": None, "b": None}), ("!!omap [a: 1]", [{"a": 1}]),
])
def test_explicit_tags(text, expected):
    assert value(text) == expected


@pytest.mark.parametrize("text, problem", [
    (".nan", "NaN"), ("-.inf", "-Inf"), ("!!int abc", "cannot decode !!str `abc` as a !!int"),
    ("!!binary '!!!'", "base64"), ("*nowhere", "unknown anchor 'nowhere'"), ("&a [1, *a]", "contains itself"),
    ("{~: 1}", "unsupported map key: null"), ("{18446744073709551615: 1}", "uint64"), ("{[1]: 1}", "invalid map key"),
    ("[a?b]", "'?'"), ("[!x,]", "flow indicator"),
])
def test_refusals_name_file_and_line(text, problem):
    with pytest.raises(FederationError) as err:
        manifest_yaml.load_all(HEADER + "spec:\n  other: 1\n  v: %s\n" % text, "dir/m.yaml")
    assert "dir/m.yaml line 6" in err.value.msg and problem in err.value.msg
    assert err.value.details == {"file": "dir/m.yaml", "line": 6}


def test_duplicate_keys_are_refused_with_file_and_line():
    with pytest.raises(FederationError) as err:
        manifest_yaml.load_all("---\n" + HEADER + "---\n" + HEADER + "data:\n  a: 1\n  b: 2\n  a: 3\n", "cm.yaml")
    assert "cm.yaml line 12" in err.value.msg and "duplicate key 'a'" in err.value.msg
    assert err.value.details["line"] == 12


def test_keys_become_json_strings():
    assert spec("  k: {1: a, 1.5: b, true: c, n: d, 1e7: e, 0.1: f, 0x10: g, 123456789.0: h, 1e3: i, -0.0: j}\n")["k"] == {
        "1": "a", "1.5": "b", "true": "c", "false": "d", "1e+07": "e", "0.1": "f", "16": "g", "1.2345679e+08": "h",
        "1000": "i", "-0": "j"}


def test_merge_keys_overwrite_in_order_as_go_yaml_does():
    result = spec("  base: &b {a: 1, b: 2}\n  extra: &e {b: 3, c: 4}\n  before: {a: 10, <<: *b}\n"
                  "  after: {<<: *b, a: 10}\n  many: {<<: [*b, *e]}\n  quoted: {'<<': x}\n")
    assert result["before"] == {"a": 1, "b": 2}
    assert result["after"] == {"a": 10, "b": 2}
    assert result["many"] == {"a": 1, "b": 2, "c": 4}
    assert result["quoted"] == {"<<": "x"}


def test_aliases_are_copies():
    (obj,) = manifest_yaml.load_all(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels: &labels {app: web}\n"
        "spec:\n  selector:\n    matchLabels: *labels\n", "d.yaml")
    stamped = stamp_owner(obj, "gitops/ns/src")
    assert stamped["spec"]["selector"]["matchLabels"] == {"app": "web"}


def test_excessive_aliasing_is_refused():
    text = "spec:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for previous, name in zip("abcdefgh", "bcdefghi"):
        text += "  %s: &%s [%s]\n" % (name, name, ", ".join(["*" + previous] * 10))
    with pytest.raises(FederationError) as err:
        manifest_yaml.load_all(HEADER + text, "bomb.yaml")
    assert "excessive aliasing" in err.value.msg


def test_anchors_may_be_redefined():
    assert spec("  a: &x 1\n  b: *x\n  c: &x 2\n  d: *x\n") == {"a": 1, "b": 1, "c": 2, "d": 2}


def test_documents_are_cut_as_kubectl_cuts_them():
    text = ("# leading comment\n---\n" + HEADER + "--- # comment\n---\n~\n---\n" + HEADER.replace("a}", "b}")
            + "spec: 1\n...\nignored: [\n")
    documents = manifest_yaml.load_documents(text, "m.yaml")
    assert [(d.index, d.line, d.value["metadata"]["name"]) for d in documents] == [(2, 3, "a"), (4, 10, "b")]


def test_content_on_a_separator_line_is_refused():
    with pytest.raises(FederationError) as err:
        manifest_yaml.load_all(HEADER + "--- {a: 1}\n", "m.yaml")
    assert "m.yaml line 4" in err.value.msg


def test_errors_give_the_line_in_the_file_not_in_the_document():
    with pytest.raises(FederationError) as err:
        manifest_yaml.load_all(HEADER + "---\n" + HEADER + "spec:\n  a: b\n c: d\n", "m.yaml")
    assert err.value.details["line"] == 10


def test_json_streams_and_json_duplicates():
    text = '{"apiVersion": "v1", "kind": "X", "metadata": {"name": "a"}, "n": 1.0, "b": 12345678901234567890}\n' \
           '{"apiVersion": "v1", "kind": "X", "metadata": {"name": "b"}}\n'
    first, second = manifest_yaml.load_all(text, "m.json")
    assert first["n"] == 1 and type(first["n"]) is int and first["b"] == 12345678901234567890.0
    assert second["metadata"]["name"] == "b"
    with pytest.raises(FederationError):
        manifest_yaml.load_all('{"a": 1, "a": 2}', "m.json")
    # NaN is no JSON: kubectl reads the file as YAML instead, where NaN is a string
    assert manifest_yaml.load_all('{"a": NaN}', "m.json") == [{"a": "NaN"}]


def test_lists_are_expanded_as_kubectl_expands_them():
    objects = manifest_yaml.expand_lists([
        {"apiVersion": "v1", "kind": "ConfigMapList", "items": [{"metadata": {"name": "a"}},
                                                                {"kind": "Secret", "metadata": {"name": "b"}}]},
        {"apiVersion": "v1", "kind": "List", "items": None},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
    ])
    assert objects == [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}},
                       {"kind": "Secret", "metadata": {"name": "b"}},
                       {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}]
    with pytest.raises(FederationError):
        manifest_yaml.expand_lists([{"kind": "List", "items": "no"}])


def test_deep_nesting_needs_no_recursion():
    assert value("[" * 900 + "]" * 900) is not None


def test_plain_scalars_with_placeholders_can_be_marked():
    class Mark(str):
        pass

    (document,) = manifest_yaml.load_documents(HEADER + "spec:\n  a: ${A}\n  b: '${B}'\n  c: x\n", "m.yaml", Mark)
    obj = document.value
    assert type(obj["spec"]["a"]) is Mark and type(obj["spec"]["b"]) is str and type(obj["spec"]["c"]) is str


def test_typed_scalar_for_substitution():
    assert manifest_yaml.typed_scalar("08") == 8
    assert manifest_yaml.typed_scalar("22:22") == "22:22"
    assert manifest_yaml.typed_scalar("y") is True
    with pytest.raises(ValueError):
        manifest_yaml.typed_scalar(".nan")


TRICKY_STRINGS = ["y", "n", "N", "0o755", "08", "1e3", "1_000", "<<", "=", "22:22", "", "~", "null", ".5", "+1",
                  "0x1F", "yes", "2021-01-27", "-0b101", "9223372036854775808", "${X}", "0b-101"]


def test_bundles_read_back_exactly():
    objects = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"},
                "data": dict(("k%d" % i, s) for i, s in enumerate(TRICKY_STRINGS)),
                "spec": {"numbers": [1, -5, 0.5, 1.5e300, 12345678901234567890.0, True, None],
                         "keys": dict((s, s) for s in TRICKY_STRINGS)}}]
    text = manifest_yaml.dump_all(objects)
    assert manifest_yaml.load_all(text, "bundle.yaml") == objects
    assert json.dumps(manifest_yaml.load_all(text, "bundle.yaml")) == json.dumps(objects)


def test_cluster_sync_bundles_use_the_loader(tmp_path):
    path = tmp_path / "bundle.yaml"
    path.write_text(HEADER + "data: {port: 22:22, enum: [=], mode: 0o755}\n")
    assert load_bundle(str(path))[0]["data"] == {"port": "22:22", "enum": ["="], "mode": 493}
    path.write_text(HEADER + "data: {a: 1, a: 2}\n")
    with pytest.raises(FederationError) as err:
        load_bundle(str(path))
    assert str(path) in err.value.msg and "line 4" in err.value.msg


def test_rendered_directories_and_substitution_use_kubectl_typing(tmp_path):
    from ansible_collections.gitops.federation.plugins.module_utils.source.render import dump_bundle, render_directory

    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "cm.yaml").write_text(
        HEADER.replace("kind: X", "kind: ConfigMap") + "data:\n  port: 22:22\n  built: 2021-01-27 02:06:03\n"
        "spec:\n  enum: ['!=', =, =~]\n  replicas: ${REPLICAS}\n  mode: ${MODE}\n  flag: ${FLAG}\n  quoted: '${MODE}'\n")
    result = render_directory(str(tmp_path), "deploy", substitute={"REPLICAS": "08", "MODE": "0o755", "FLAG": "y"})
    (obj,) = result.objects
    assert obj["data"] == {"port": "22:22", "built": "2021-01-27 02:06:03"}
    assert obj["spec"] == {"enum": ["!=", "=", "=~"], "replicas": 8, "mode": 493, "flag": True, "quoted": "0o755"}
    assert manifest_yaml.load_all(dump_bundle(result.objects), "bundle.yaml") == result.objects
