"""A local Kubernetes control plane (etcd, kube-apiserver, controllers, KWOK) for development and tests."""
