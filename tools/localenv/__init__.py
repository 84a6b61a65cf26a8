"""Local, real test environments for gitops.federation: Kubernetes control planes and git servers.

Developer tooling only (excluded from the built collection). Every process started here is a real
server on loopback: etcd + kube-apiserver for clusters, nginx + fcgiwrap + git-http-backend and sshd
for git.
"""
