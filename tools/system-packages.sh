#!/usr/bin/env bash
# Install the Debian packages the test tooling needs (git servers, kustomize/kube builds, libyaml for
# PyYAML's C loader, gcc for Gitea's SQLite (cgo), a Java runtime for ansible-rulebook's rule engine).
# Skips apt entirely when every package is already installed.
set -euo pipefail
packages=(git openssh-client openssh-server nginx-light fcgiwrap libyaml-dev python3-venv openssl curl gcc libc6-dev
          openjdk-17-jre-headless)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
echo ">> installing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# policy-rc.d keeps the packages' maintainer scripts from starting system-wide daemons: the tests start
# their own nginx and sshd on loopback high ports. An existing policy is left as it is.
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  $sudo sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
  trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
fi
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
