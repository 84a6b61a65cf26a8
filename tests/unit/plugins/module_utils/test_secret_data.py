"""Unit tests of secret data: Flux key names, encoding, and credentials for the render step."""

import base64

import pytest

from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.federation.secret_data import (
    build_data,
    data_keys,
    encode,
    git_credentials,
)


def b64(text):
    return base64.b64encode(text.encode()).decode()


def test_helpers_use_flux_key_names():
    data = build_data(helpers=dict(username="deploy", password="s3cret", bearer_token="tok", ca_file="PEM",
                                   ssh_private_key="KEY", ssh_public_key="PUB", known_hosts="host ssh-ed25519 AAA"))
    assert data == {"username": b64("deploy"), "password": b64("s3cret"), "bearerToken": b64("tok"),
                    "caFile": b64("PEM"), "identity": b64("KEY"), "identity.pub": b64("PUB"),
                    "known_hosts": b64("host ssh-ed25519 AAA")}


def test_precedence_data_then_string_data_then_helpers():
    data = build_data(data={"password": b64("from-data"), "raw": b64("\x00bin")},
                      string_data={"password": "from-string", "note": "plain"},
                      helpers={"password": "from-helper", "username": None})
    assert data == {"password": b64("from-helper"), "raw": b64("\x00bin"), "note": b64("plain")}


def test_invalid_base64_in_data_names_the_key_not_the_value():
    with pytest.raises(FederationError) as err:
        build_data(data={"token": "not base64 at all!"})
    assert "data.token is not valid base64" in err.value.msg
    assert "not base64 at all" not in err.value.msg


def test_invalid_keys_are_rejected():
    with pytest.raises(FederationError, match="'bad key' is not a valid Secret key"):
        build_data(string_data={"bad key": "v"})


def test_non_string_values_are_encoded_as_text():
    assert encode(3) == b64("3")
    assert build_data(string_data={"n": 5}) == {"n": b64("5")}


def test_git_credentials_decode_only_the_credential_keys():
    secret = {"data": {"username": b64("git"), "password": b64("pw"), "identity.pub": b64("PUB"), "caFile": b64("PEM"),
                       "identity": b64("KEY"), "known_hosts": b64("kh")}}
    assert git_credentials(secret) == {"username": "git", "password": "pw", "identity": "KEY", "known_hosts": "kh",
                                       "caFile": "PEM"}
    assert git_credentials({"data": {}}) == {}
    assert git_credentials(None) == {}
    with pytest.raises(FederationError, match="key password is not base64-encoded UTF-8 text"):
        git_credentials({"data": {"password": base64.b64encode(b"\xff\xfe").decode()}})


def test_data_keys():
    assert data_keys({"data": {"b": "x", "a": "y"}}) == ["a", "b"]
    assert data_keys(None) == []
