"""Unit tests of render: plain directories, substitution, validation, path safety and the bundle file."""

import os

import pytest
import yaml

from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.source.render import (
    digest,
    dump_bundle,
    render_directory,
    resolve_path,
    substitute_text,
    write_bundle,
)


def cm(name, **data):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def write(root, files):
    for relative, text in files.items():
        path = os.path.join(str(root), relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write(text)


def names(result):
    return [obj["metadata"]["name"] for obj in result.objects]


def test_uses_libyaml_when_available():
    from ansible_collections.gitops.federation.plugins.module_utils.source import manifest_yaml
    if yaml.__with_libyaml__:
        assert manifest_yaml.HAS_LIBYAML and issubclass(manifest_yaml.Dumper, yaml.CSafeDumper)


# -- plain directories ----------------------------------------------------------------------------------------

def test_plain_directory_is_read_recursively_in_path_order(tmp_path):
    write(tmp_path, {
        "deploy/b.yaml": yaml.safe_dump(cm("b")),
        "deploy/a.yml": "---\n" + yaml.safe_dump(cm("a1")) + "---\n# only a comment\n---\n" + yaml.safe_dump(cm("a2")),
        "deploy/sub/c.json": '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}',
        "deploy/README.md": "not a manifest: [",
        "deploy/script.sh": "echo hi",
        "deploy/.hidden/x.yaml": "invalid: [",
        "deploy/.sops.yaml": "creation_rules: []",
        "other/ignored.yaml": yaml.safe_dump(cm("elsewhere")),
    })
    result = render_directory(str(tmp_path), "deploy")
    assert result.method == "plain"
    assert names(result) == ["a1", "a2", "b", "c"]
    # same input, same bundle
    assert dump_bundle(result.objects) == dump_bundle(render_directory(str(tmp_path), "./deploy/").objects)


def test_list_kinds_are_expanded(tmp_path):
    write(tmp_path, {"list.yaml": yaml.safe_dump({"apiVersion": "v1", "kind": "List",
                                                  "items": [cm("one"), cm("two")]}),
                     "cms.yaml": yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMapList",
                                                 "items": [cm("three")]})})
    assert names(render_directory(str(tmp_path), ".")) == ["three", "one", "two"]


def test_list_items_are_validated_with_their_origin(tmp_path):
    write(tmp_path, {"list.yaml": yaml.safe_dump({"apiVersion": "v1", "kind": "List",
                                                  "items": [cm("one"), {"kind": "ConfigMap"}]})})
    with pytest.raises(FederationError) as err:
        render_directory(str(tmp_path), ".")
    assert "list.yaml document 1 item 2" in err.value.msg
    assert "apiVersion" in err.value.msg and "metadata.name" in err.value.msg


def test_every_invalid_object_is_reported(tmp_path):
    write(tmp_path, {"a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n---\n- just\n- a list\n",
                     "b.yaml": "apiVersion: v1\nmetadata:\n  name: x\n"})
    with pytest.raises(FederationError) as err:
        render_directory(str(tmp_path), ".")
    msg = err.value.msg
    assert "a.yaml document 1 (ConfigMap/?) has no metadata.name" in msg
    assert "a.yaml document 2 is not a Kubernetes object" in msg
    assert "b.yaml document 1 (?/x) has no kind" in msg
    assert len(err.value.details["errors"]) == 3


def test_yaml_error_names_file_and_line(tmp_path):
    write(tmp_path, {"apps/ok.yaml": yaml.safe_dump(cm("ok")),
                     "apps/broken.yaml": "kind: ConfigMap\napiVersion: v1\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\n"
                                         "metadata:\n  name: x\ndata:\n  a: b\n  - c\n  d: e\n"})
    with pytest.raises(FederationError) as err:
        render_directory(str(tmp_path), "apps")
    # line 11 is '  - c', in the second document
    assert "apps/broken.yaml line 11" in err.value.msg and "did not find expected key" in err.value.msg
    assert err.value.details == {"file": "apps/broken.yaml", "line": 11}


def test_json_error_names_file_and_line(tmp_path):
    write(tmp_path, {"x.json": '{\n  "apiVersion": "v1",\n  "kind" "ConfigMap"\n}\n'})
    with pytest.raises(FederationError) as err:
        render_directory(str(tmp_path), ".")
    assert "x.json line 3" in err.value.msg


def test_empty_directory_renders_nothing(tmp_path):
    os.makedirs(str(tmp_path / "empty"))
    result = render_directory(str(tmp_path), "empty")
    assert result.objects == [] and dump_bundle(result.objects) == ""


# -- path safety --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["..", "../x", "deploy/../../x", "./../"])
def test_path_above_the_root_is_refused(tmp_path, path):
    root = tmp_path / "repo"
    write(root, {"deploy/a.yaml": yaml.safe_dump(cm("a"))})
    write(tmp_path, {"x/secret.yaml": yaml.safe_dump(cm("outside"))})
    with pytest.raises(FederationError) as err:
        render_directory(str(root), path)
    assert "path %r leaves the repository" % path in err.value.msg


def test_leading_slash_means_repository_root(tmp_path):
    write(tmp_path, {"deploy/a.yaml": yaml.safe_dump(cm("a"))})
    assert resolve_path(str(tmp_path), "/deploy") == os.path.realpath(str(tmp_path / "deploy"))


def test_symlinked_path_leaving_the_repository_is_refused(tmp_path):
    root = tmp_path / "repo"
    write(root, {"a.yaml": yaml.safe_dump(cm("a"))})
    write(tmp_path, {"outside/x.yaml": yaml.safe_dump(cm("x"))})
    os.symlink(str(tmp_path / "outside"), str(root / "link"))
    with pytest.raises(FederationError) as err:
        render_directory(str(root), "link")
    assert "leaves the repository through the symlink link" in err.value.msg


def test_symlinked_file_leaving_the_repository_is_refused(tmp_path):
    root = tmp_path / "repo"
    write(root, {"deploy/a.yaml": yaml.safe_dump(cm("a"))})
    write(tmp_path, {"outside.yaml": yaml.safe_dump(cm("x"))})
    os.symlink(str(tmp_path / "outside.yaml"), str(root / "deploy" / "b.yaml"))
    with pytest.raises(FederationError) as err:
        render_directory(str(root), "deploy")
    assert "the symlink deploy/b.yaml points outside the repository" in err.value.msg


def test_symlinks_inside_the_repository_are_followed(tmp_path):
    write(tmp_path, {"shared/s.yaml": yaml.safe_dump(cm("shared")), "deploy/a.yaml": yaml.safe_dump(cm("a"))})
    os.symlink("../shared", str(tmp_path / "deploy" / "shared"))
    os.symlink("..", str(tmp_path / "deploy" / "loop"))  # a loop must not recurse forever
    # each real directory is read once, however many links lead to it
    assert sorted(names(render_directory(str(tmp_path), "deploy"))) == ["a", "shared"]


def test_missing_path_and_file_path(tmp_path):
    write(tmp_path, {"a.yaml": yaml.safe_dump(cm("a"))})
    with pytest.raises(FederationError, match="path 'nope' does not exist"):
        render_directory(str(tmp_path), "nope")
    with pytest.raises(FederationError, match="is not a directory"):
        render_directory(str(tmp_path), "a.yaml")
    with pytest.raises(FederationError, match=".git"):
        render_directory(str(tmp_path), ".git")


def test_kustomization_reference_outside_the_repository_is_refused(tmp_path):
    root = tmp_path / "repo"
    write(root, {"overlay/kustomization.yaml": "resources:\n  - ../../elsewhere\n"})
    with pytest.raises(FederationError) as err:
        render_directory(str(root), "overlay", kustomize_path="/bin/false")
    assert "overlay/kustomization.yaml refers to '../../elsewhere'" in err.value.msg


def test_missing_kustomize_path_is_named(tmp_path):
    write(tmp_path, {"kustomization.yaml": "resources: []\n"})
    with pytest.raises(FederationError, match="kustomize_path /nonexistent/kustomize"):
        render_directory(str(tmp_path), ".", kustomize_path="/nonexistent/kustomize")


# -- substitution ----------------------------------------------------------------------------------------------

def test_substitute_text_semantics():
    missing = set()
    variables = {"A": "1", "EMPTY": ""}
    text = "${A} ${A:=9} ${B:=two words} ${EMPTY:-dflt} ${EMPTY} $${A} ${C} ${not-a-var} $A"
    assert substitute_text(text, variables, missing) == "1 1 two words dflt  ${A} ${C} ${not-a-var} $A"
    assert missing == {"C"}


def test_substitution_in_rendered_objects(tmp_path):
    write(tmp_path, {"app.yaml": (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-${CLUSTER}\n"
        "  labels:\n    ${LABEL_KEY}: on\n"
        "spec:\n  replicas: ${REPLICAS:=2}\n  paused: ${PAUSED}\n  quoted: \"${REPLICAS:=2}\"\n"
        "  injected: x-${INJECT}\n  block: |\n    ${REPLICAS:=3}\n"
        "  template:\n    metadata:\n      annotations:\n        literal: $${CLUSTER}\n"),
        "script.yaml": (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: script\n  annotations:\n"
            "    kustomize.toolkit.fluxcd.io/substitute: disabled\ndata:\n  run.sh: echo ${HOME}\n"),
        "data.json": '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "j"}, "data": {"n": "${REPLICAS:=4}"}}',
    })
    result = render_directory(str(tmp_path), ".", substitute={"CLUSTER": "east", "PAUSED": False,
                                                              "LABEL_KEY": "tier", "INJECT": "a: b\nc: d"})
    app, json_cm, script = result.objects
    assert app["metadata"]["name"] == "app-east"
    assert app["metadata"]["labels"] == {"tier": True}  # YAML 1.1 'on', as before substitution
    # unquoted scalars are typed again after substitution, as Flux does; quoted and block ones stay strings
    assert app["spec"]["replicas"] == 2
    assert app["spec"]["paused"] is False
    assert app["spec"]["quoted"] == "2"
    assert app["spec"]["block"] == "3\n"
    assert app["spec"]["injected"] == "x-a: b\nc: d"  # a value never adds YAML structure
    assert app["spec"]["template"]["metadata"]["annotations"]["literal"] == "${CLUSTER}"
    assert json_cm["data"]["n"] == "4"  # JSON strings are quoted
    assert script["data"]["run.sh"] == "echo ${HOME}"
    # marks of plain scalars never reach the bundle
    assert "!!python" not in dump_bundle(result.objects)
    assert all(type(v) is str for v in script["data"].values())  # pylint: disable=unidiomatic-typecheck


def test_substitution_of_undefined_variable_names_it_and_the_object(tmp_path):
    write(tmp_path, {"a.yaml": yaml.safe_dump(cm("a", x="${MISSING}", y="${ALSO_MISSING}"))})
    with pytest.raises(FederationError) as err:
        render_directory(str(tmp_path), ".", substitute={"OTHER": "1"})
    assert "ConfigMap/a (a.yaml document 1): ALSO_MISSING, MISSING" in err.value.msg


def test_without_substitute_placeholders_stay(tmp_path):
    write(tmp_path, {"a.yaml": yaml.safe_dump(cm("a", x="${MISSING}"))})
    assert render_directory(str(tmp_path), ".").objects[0]["data"]["x"] == "${MISSING}"


@pytest.mark.parametrize("variables,message", [({"bad-name": "1"}, "'bad-name' is not a valid variable name"),
                                               ({"X": [1]}, "value of X must be a string")])
def test_substitute_variables_are_checked(tmp_path, variables, message):
    write(tmp_path, {"a.yaml": yaml.safe_dump(cm("a"))})
    with pytest.raises(FederationError, match=message):
        render_directory(str(tmp_path), ".", substitute=variables)


# -- bundle ------------------------------------------------------------------------------------------------------

def test_bundle_round_trip_digest_and_write(tmp_path):
    objects = [cm("a", k="v"), cm("b")]
    text = dump_bundle(objects)
    assert text.startswith("---\n") and text.count("---\n") == 2
    assert list(yaml.safe_load_all(text)) == objects
    assert digest(text) == digest(dump_bundle([cm("a", k="v"), cm("b")]))
    assert digest(text).startswith("sha256:") and len(digest(text)) == 7 + 64
    dest = tmp_path / "out" / "bundle.yaml"
    assert write_bundle(text, str(dest)) is True
    assert oct(os.stat(str(dest)).st_mode & 0o777) == oct(0o600)
    mtime = os.stat(str(dest)).st_mtime_ns
    assert write_bundle(text, str(dest)) is False
    assert os.stat(str(dest)).st_mtime_ns == mtime  # untouched when unchanged
    assert write_bundle(dump_bundle(objects[:1]), str(dest)) is True
    assert os.listdir(str(tmp_path / "out")) == ["bundle.yaml"]  # no temp files left behind


def test_ignore_rules_follow_gitignore_order_and_anchoring(tmp_path):
    from ansible_collections.gitops.federation.plugins.module_utils.source.render import IgnoreRules, remove_ignored

    rules = IgnoreRules("# docs and tests\n*.md\n/tests/\n!keep.md\nscratch/\n")
    assert rules.ignored("README.md", False) and rules.ignored("deploy/notes.md", False)
    assert not rules.ignored("deploy/keep.md", False)
    assert rules.ignored("tests", True) and not rules.ignored("deploy/tests", True)
    assert rules.ignored("deploy/scratch", True) and not rules.ignored("deploy/scratch", False)
    for relative in ("README.md", "deploy/app.yaml", "deploy/keep.md", "tests/t.yaml", "deploy/scratch/x.yaml"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("x: 1\n")
    removed = remove_ignored(str(tmp_path), "*.md\n/tests/\n!keep.md\nscratch/\n")
    assert sorted(removed) == ["README.md", "deploy/scratch/", "tests/"]
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert left == ["deploy/app.yaml", "deploy/keep.md"]


def test_ignore_star_stays_within_one_directory_like_git(tmp_path):
    # Failed on the fnmatch rules: '*' crossed '/', so deploy/*.yaml also removed deploy/overlay/app.yaml,
    # which git (and Flux) keep.
    from ansible_collections.gitops.federation.plugins.module_utils.source.render import IgnoreRules, remove_ignored

    rules = IgnoreRules("deploy/*.yaml\n")
    assert rules.ignored("deploy/app.yaml", False)
    assert not rules.ignored("deploy/overlay/app.yaml", False)
    assert IgnoreRules("deploy/**/*.yaml\n").ignored("deploy/overlay/app.yaml", False)
    for relative in ("deploy/app.yaml", "deploy/overlay/app.yaml"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("x: 1\n")
    assert remove_ignored(str(tmp_path), "deploy/*.yaml") == ["deploy/app.yaml"]
    assert (tmp_path / "deploy" / "overlay" / "app.yaml").exists()


def test_ignored_manifests_are_not_rendered(tmp_path):
    from ansible_collections.gitops.federation.plugins.module_utils.source.render import render_directory

    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kept\n")
    (tmp_path / "app" / "draft.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: draft\n")
    result = render_directory(str(tmp_path), "app", ignore="draft.yaml")
    assert [o["metadata"]["name"] for o in result.objects] == ["kept"]
