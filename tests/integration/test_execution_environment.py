"""The execution environment definition is valid: ansible-builder (v3) turns it into a complete build context.

No image is built (that needs a container runtime and a base image); `ansible-builder create` validates
execution-environment.yml against its schema and writes everything `ansible-builder build` would use.
"""

import os
import shutil
import stat
import subprocess
import sys

import pytest
import yaml

from tools.localenv.binaries import binary

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.dirname(sys.executable)
EE_FILE = os.path.join(ROOT, "execution-environment.yml")
# execution-environment.yml copies this file into the image (additional_build_files); `make ee-context` makes it.
EE_KUSTOMIZE = os.path.join(ROOT, ".build", "ee", "kustomize")


def _builder(*args):
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-builder"), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"ansible-builder {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _requirement_lines(path):
    with open(path) as handle:
        return [line.strip() for line in handle if line.strip() and not line.lstrip().startswith("#")]


@pytest.fixture(scope="module")
def ee_kustomize():
    """The pinned kustomize the tests use, where execution-environment.yml expects it."""
    source = binary("kustomize")
    os.makedirs(os.path.dirname(EE_KUSTOMIZE), exist_ok=True)
    if not (os.path.exists(EE_KUSTOMIZE) and os.path.getsize(EE_KUSTOMIZE) == os.path.getsize(source)):
        shutil.copyfile(source, EE_KUSTOMIZE + ".tmp")
        os.chmod(EE_KUSTOMIZE + ".tmp", 0o755)
        os.replace(EE_KUSTOMIZE + ".tmp", EE_KUSTOMIZE)
    return EE_KUSTOMIZE


@pytest.fixture(scope="module")
def build_context(ee_kustomize, tmp_path_factory):
    context = str(tmp_path_factory.mktemp("ee-context"))
    _builder("create", "-f", EE_FILE, "--context", context, "--output-filename", "Containerfile")
    return context


def test_definition_is_version_3():
    with open(EE_FILE) as handle:
        definition = yaml.safe_load(handle)
    assert definition["version"] == 3
    assert set(definition["dependencies"]) >= {"ansible_core", "ansible_runner", "python", "system", "galaxy"}


def test_context_holds_the_collection_requirements(build_context):
    build = os.path.join(build_context, "_build")
    assert _requirement_lines(os.path.join(build, "requirements.txt")) == _requirement_lines(
        os.path.join(ROOT, "requirements.txt"))
    assert _requirement_lines(os.path.join(build, "bindep.txt")) == _requirement_lines(os.path.join(ROOT, "bindep.txt"))
    with open(os.path.join(build, "requirements.yml")) as handle:
        galaxy = yaml.safe_load(handle)
    assert "kubernetes.core" in [c["name"] for c in galaxy["collections"]]
    assert any(line.startswith("kubernetes") for line in _requirement_lines(os.path.join(build, "requirements.txt")))
    assert any(line.startswith("git ") for line in _requirement_lines(os.path.join(build, "bindep.txt")))


def test_containerfile_installs_ansible_and_dependencies(build_context):
    with open(os.path.join(build_context, "Containerfile")) as handle:
        containerfile = handle.read()
    assert "ansible-core>=2.16,<2.20" in containerfile and "ansible-runner>=2.4,<3" in containerfile
    assert "ansible-galaxy collection install" in containerfile and "-r requirements.yml" in containerfile
    assert "--user-pip=requirements.txt --user-bindep=bindep.txt" in containerfile


def test_containerfile_copies_kustomize(build_context, ee_kustomize):
    with open(os.path.join(build_context, "Containerfile")) as handle:
        lines = [line.strip() for line in handle]
    assert "COPY _build/bin/kustomize /usr/local/bin/kustomize" in lines
    # In the final stage, before the image drops root.
    final = lines.index("FROM base AS final")
    assert final < lines.index("COPY _build/bin/kustomize /usr/local/bin/kustomize") < lines.index("USER 1000")
    copied = os.path.join(build_context, "_build", "bin", "kustomize")
    assert os.path.getsize(copied) == os.path.getsize(ee_kustomize)
    assert os.stat(copied).st_mode & stat.S_IXUSR
    version = subprocess.run([copied, "version"], capture_output=True, text=True, check=True).stdout
    assert version.strip().startswith("v5.")


def test_collection_declares_its_dependencies_for_builder_introspection():
    """An EE that installs gitops.federation from Galaxy finds its Python and system requirements on its own."""
    collections = os.path.join(ROOT, ".build", "collections")
    assert os.path.isdir(os.path.join(collections, "ansible_collections", "gitops", "federation")), (
        "run `make collection-link` first")
    report = yaml.safe_load(_builder("introspect", collections))
    python = [line for line in report["python"] if "from collection gitops.federation" in line]
    system = [line for line in report["system"] if "from collection gitops.federation" in line]
    assert any(line.startswith("kubernetes") for line in python), report
    assert any(line.startswith("git ") for line in system), report
