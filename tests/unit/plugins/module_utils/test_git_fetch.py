"""Unit tests of git_fetch: semver ranges, revisions, refs, URLs, credentials and scrubbing (no git needed)."""

import pytest

from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.source.git_fetch import (
    MASK,
    GitCredentials,
    GitSource,
    SemverRange,
    parse_version,
    cache_key,
    format_revision,
    normalize_ref,
    scrub,
    split_url_credentials,
)

TAGS = ["v0.9.0", "v1.0.0", "v1.2.0", "1.2.5", "v1.3.0-rc.1", "v1.10.0", "v2.0.0", "v2.0.0-beta.2", "latest",
        "v1.4", "release-1.5.0"]


# -- versions -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("1.2.3", (1, 2, 3, ())),
    ("v1.2.3", (1, 2, 3, ())),
    ("v1.2.3-rc.1+build.5", (1, 2, 3, ("rc", "1"))),
    ("v1.2", None),
    ("01.2.3", None),
    ("release-1.2.3", None),
    ("latest", None),
])
def test_version_parse(text, expected):
    version = parse_version(text)
    if expected is None:
        assert version is None
    else:
        assert (version.major, version.minor, version.patch, tuple(version.prerelease)) == expected


def test_version_precedence_follows_semver_spec():
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
               "1.0.0-rc.1", "1.0.0", "1.0.1", "1.2.0", "1.10.0", "2.0.0"]
    versions = [parse_version(v) for v in ordered]
    assert sorted(reversed(versions)) == versions
    assert parse_version("1.0.0+build.1") == parse_version("1.0.0")


# -- ranges ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,best", [
    (">=1.2.0 <2.0.0", "v1.10.0"),
    (">=1.2.0, <2.0.0", "v1.10.0"),
    (">= 1.2.0 < 1.10.0", "1.2.5"),
    ("<1.2.0", "v1.0.0"),
    ("<=1.2.0", "v1.2.0"),
    (">1.2.0 <1.3.0", "1.2.5"),
    ("=1.2.0", "v1.2.0"),
    ("1.2.0", "v1.2.0"),
    ("v1.2.0", "v1.2.0"),
    ("~1.2.0", "1.2.5"),
    ("^1.2.0", "v1.10.0"),
    ("^0.9.0", "v0.9.0"),
    ("1.2.x", "1.2.5"),
    ("1.x", "v1.10.0"),
    ("*", "v2.0.0"),
    ("<1.0.0 || >=1.2.0 <1.3.0", "1.2.5"),
    ("1.0.0 - 1.2.0", "v1.2.0"),
    (">=3.0.0", None),
    # pre-releases only when the range names one
    (">=1.3.0-0 <1.4.0", "v1.3.0-rc.1"),
    (">=1.3.0 <1.4.0", None),
    (">=2.0.0-0", "v2.0.0"),
    # npm's rule (semantic_version NpmSpec): a pre-release only through a comparator naming a pre-release of
    # the same major.minor.patch. The hand-written parser picked v2.0.0-beta.2 here, a pre-release of the
    # major the range excludes.
    (">=1.11.0-0 <2.0.0", None),
    # Flux/Masterminds spellings still read
    ("~> 1.2.0", "1.2.5"),
    ("^ 1.2.0", "v1.10.0"),
])
def test_semver_range_picks_highest_matching_tag(text, best):
    assert SemverRange(text).best(TAGS) == best


def test_semver_range_excludes_prerelease_below_upper_bound():
    # 2.0.0-beta.2 < 2.0.0, but a range without a pre-release never picks one.
    assert not SemverRange("<2.0.0").matches(parse_version("2.0.0-beta.2"))
    assert SemverRange("<2.0.0").best(["2.0.0-beta.2", "1.9.9"]) == "1.9.9"


def test_semver_prerelease_of_next_major_is_not_picked_by_a_prerelease_range():
    # Failed on the hand-written parser (any pre-release bound let every pre-release in): >=1.0.0-0 <2.0.0 chose
    # 2.0.0-0 over 1.3.0.
    assert SemverRange(">=1.0.0-0 <2.0.0").best(["1.0.0-rc.1", "1.3.0", "2.0.0-0"]) == "1.3.0"
    assert SemverRange(">=1.0.0-0 <2.0.0").best(["1.0.0-rc.1", "0.9.0"]) == "1.0.0-rc.1"


def test_semver_tie_between_v_and_plain_tag_is_stable():
    assert SemverRange(">=1.0.0").best(["1.0.0", "v1.0.0"]) == SemverRange(">=1.0.0").best(["v1.0.0", "1.0.0"])


@pytest.mark.parametrize("text", ["", "   ", ">=foo", "1.2.3 ||", ">>1.0.0", "1.2-rc.1", "1.2.3.4"])
def test_semver_range_rejects_garbage(text):
    with pytest.raises(FederationError) as err:
        SemverRange(text)
    assert "ref.semver" in err.value.msg


# -- refs and revisions ---------------------------------------------------------------------------------------

def test_format_revision_like_flux():
    sha = "3c1e2d8a4f0b6e7d9c5a1b2f3e4d5c6b7a8f9e0d"
    assert format_revision("main", sha) == "main@sha1:" + sha
    assert format_revision("v1.2.0", sha) == "v1.2.0@sha1:" + sha
    assert format_revision(None, sha) == "sha1:" + sha
    assert format_revision("main", "a" * 64) == "main@sha256:" + "a" * 64


def test_normalize_ref():
    assert normalize_ref(None) == (None, None)
    assert normalize_ref({"branch": "main", "tag": None}) == ("branch", "main")
    assert normalize_ref({"commit": "ABCDEF1"}) == ("commit", "ABCDEF1")
    with pytest.raises(FederationError, match="only one of"):
        normalize_ref({"branch": "main", "tag": "v1"})
    with pytest.raises(FederationError, match="not a commit SHA"):
        normalize_ref({"commit": "main"})
    with pytest.raises(FederationError, match="unknown key"):
        normalize_ref({"version": "1"})
    with pytest.raises(FederationError, match="ref.branch"):
        normalize_ref({"branch": "--upload-pack=evil"})
    with pytest.raises(FederationError, match="ref.semver"):
        normalize_ref({"semver": ">=foo"})


# -- URLs, credentials, scrubbing -------------------------------------------------------------------------------

def test_split_url_credentials_takes_credentials_out_of_http_urls():
    assert split_url_credentials("https://bob:s%40cret@git.example.com/org/repo.git") == (
        "https://git.example.com/org/repo.git", "bob", "s@cret")
    assert split_url_credentials("https://token@git.example.com/r.git") == (
        "https://git.example.com/r.git", "token", None)
    # for SSH the user is part of the address
    assert split_url_credentials("ssh://git@git.example.com:2222/r.git") == ("ssh://git@git.example.com:2222/r.git",
                                                                             None, None)
    assert split_url_credentials("git@github.com:org/repo.git") == ("git@github.com:org/repo.git", None, None)
    # local repositories only when the operator allows them
    assert split_url_credentials("/srv/git/repo.git", allow_local=True)[0] == "/srv/git/repo.git"
    assert split_url_credentials("file:///srv/git/repo.git", allow_local=True)[0] == "file:///srv/git/repo.git"


@pytest.mark.parametrize("url", ["ext::sh -c touch% /tmp/pwned", "fd::17", "-uhttps://x", "ftp://host/repo", "repo", "",
                                 "git://host/repo.git", "-oProxyCommand=x:repo", "git@-oProxyCommand=x:repo",
                                 "ssh://-oProxyCommand=x/repo", "ssh:///repo", "./repo"])
def test_split_url_credentials_rejects_non_git_urls(url):
    with pytest.raises(FederationError, match="url"):
        split_url_credentials(url)
    with pytest.raises(FederationError, match="url"):
        split_url_credentials(url, allow_local=True)


@pytest.mark.parametrize("url", ["/srv/git/repo.git", "file:///srv/git/repo.git", "FILE:///srv/git/repo.git",
                                 "file://localhost/srv/git/repo.git"])
def test_local_urls_need_allow_local(url):
    with pytest.raises(FederationError, match="allow_local_urls"):
        split_url_credentials(url)
    assert split_url_credentials(url, allow_local=True)[0] == url


def test_cache_key_ignores_credentials(tmp_path):
    plain = GitSource("https://git.example.com/r.git", cache_dir=str(tmp_path))
    with_creds = GitSource("https://bob:pw@git.example.com/r.git", cache_dir=str(tmp_path))
    assert plain.path == with_creds.path == str(tmp_path / cache_key("https://git.example.com/r.git"))
    assert with_creds.credentials.username == "bob" and with_creds.credentials.password == "pw"
    assert GitSource("https://git.example.com/other.git", cache_dir=str(tmp_path)).path != plain.path


def test_scrub_masks_secrets_and_url_passwords():
    text = "fatal: unable to access 'https://bob:hunter22@host/r.git/': token abc123token and hunter22"
    scrubbed = scrub(text, ["abc123token", "hunter22"])
    assert "hunter22" not in scrubbed and "abc123token" not in scrubbed
    assert "https://bob:%s@host/r.git/" % MASK in scrubbed
    assert scrub("no secrets here", ["", None]) == "no secrets here"


def test_credentials_secrets_cover_key_lines_and_basic_auth_header():
    key = ("-----BEGIN OPENSSH PRIVATE KEY-----\n"
           "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
           "QyNTUxOQAAACB1c2VyLXByaXZhdGUta2V5LWZvci10ZXN0cy1vbmx5AAAAAAAAAAAAAAAA\n"
           "-----END OPENSSH PRIVATE KEY-----\n")
    creds = GitCredentials(username="bob", password="pw-123456", ssh_private_key=key)
    secrets = creds.secrets
    assert "pw-123456" in secrets
    assert "Ym9iOnB3LTEyMzQ1Ng==" in secrets  # base64("bob:pw-123456") as in an Authorization header
    line = "QyNTUxOQAAACB1c2VyLXByaXZhdGUta2V5LWZvci10ZXN0cy1vbmx5AAAAAAAAAAAAAAAA"
    assert line in secrets
    assert line not in scrub("ssh said: " + line, secrets)


def test_credentials_from_flux_secret_data():
    creds = GitCredentials.from_secret_data(
        {"username": "bob", "password": "pw", "identity": "KEY", "identity.pub": "PUB", "known_hosts": "KH"},
        password="override", username=None)
    assert (creds.username, creds.password, creds.ssh_private_key, creds.known_hosts) == (
        "bob", "override", "KEY", "KH")
    assert GitCredentials.from_secret_data({"bearerToken": "tok"}).bearer_token == "tok"
    assert GitCredentials.from_secret_data({"caFile": "PEM"}).ca_file == "PEM"
    assert GitCredentials.from_secret_data({"caFile": "PEM"}, ca_file="OTHER").ca_file == "OTHER"
    with pytest.raises(FederationError, match="caFile"):
        GitCredentials.from_secret_data({"cafile": "PEM"})
    with pytest.raises(FederationError, match="bearer_token"):
        GitCredentials(password="a", bearer_token="b")
