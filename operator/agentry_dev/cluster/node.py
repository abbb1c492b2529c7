"""The real node's configuration (containerd, CNI, kubelet, kube-proxy), as pure functions of a cluster's layout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agentry_dev.cluster.layout import Layout, NodePorts
from agentry_dev.cluster.network import HOST
from agentry_dev.cluster.pki import COREDNS_USER

CNI_BIN_DIR = Path("/usr/lib/cni")
"""Where Debian's containernetworking-plugins put bridge, host-local and loopback."""

RUNC = Path("/usr/sbin/runc")
"""Debian's runc: crun fails on this VM's hybrid cgroup layout, runc works."""


CLUSTER_DOMAIN = "cluster.local"
"""Service names resolve as `<service>.<namespace>.svc.cluster.local`, as on most clusters."""

POD_RANGE_START, POD_RANGE_END = 10, 250
"""Host addresses of the bridge's /24 handed to pods (`.1` is the node)."""


def ports(layout: Layout) -> NodePorts:
    """The node's ports; a layout without a real node has none, and asking is a programming error."""
    if layout.node_ports is None:
        raise ValueError(f"cluster {layout.name} has no real node")
    return layout.node_ports


def sandbox_image(layout: Layout) -> str:
    """The pause image, built here and pinned so neither containerd nor the kubelet ever pulls or collects it."""
    if layout.sandbox_image is None:
        raise ValueError(f"cluster {layout.name} has no sandbox (pause) image")
    return layout.sandbox_image


def paths(layout: Layout) -> dict[str, Path]:
    """Every folder and file the node writes, all under the cluster's own folder."""
    root = layout.node_root
    return {
        "containerd_config": root / "containerd.toml",
        "containerd_root": root / "containerd" / "root",
        "containerd_state": root / "containerd" / "state",
        "run": layout.containerd_socket.parent,
        "cni_conf": root / "cni" / "net.d",
        "cni_data": root / "cni" / "data",
        "kubelet_root": root / "kubelet",
        "kubelet_config": root / "kubelet.yaml",
        "pod_logs": root / "pod-logs",
        "proxy_config": root / "kube-proxy.yaml",
        "resolv_conf": root / "resolv.conf",
        "corefile": root / "Corefile",
    }


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def _toml(tables: dict[str, dict[str, object]], top: dict[str, object]) -> str:
    lines = [f"{k} = {_toml_value(v)}" for k, v in top.items()]
    for table, values in tables.items():
        lines += ["", f"[{table}]", *(f"  {k} = {_toml_value(v)}" for k, v in values.items())]
    return "\n".join(lines) + "\n"


def containerd_config(layout: Layout) -> str:
    """The config of containerd 2.x (version 3): CRI on a private socket, runc, CNI from the cluster's folder.

    `restrict_oom_score_adj`: this VM lacks CAP_SYS_RESOURCE, so a sandbox may not lower its OOM score, and without
    this every pod sandbox fails. Plugins that would write outside the cluster's folder (NRI's socket, the
    snapshotters this VM cannot use) are off; network namespaces are mounted under the state folder.
    """
    p = paths(layout)
    cri = "plugins.'io.containerd.cri.v1.runtime'"
    runc = f"{cri}.containerd.runtimes.runc"
    top: dict[str, object] = {
        "version": 3,
        "root": str(p["containerd_root"]),
        "state": str(p["containerd_state"]),
        "disabled_plugins": [
            "io.containerd.nri.v1.nri",
            "io.containerd.snapshotter.v1.btrfs",
            "io.containerd.snapshotter.v1.zfs",
            "io.containerd.snapshotter.v1.devmapper",
            "io.containerd.snapshotter.v1.blockfile",
            "io.containerd.snapshotter.v1.erofs",
            "io.containerd.tracing.processor.v1.otlp",
            "io.containerd.internal.v1.tracing",
        ],
    }
    tables: dict[str, dict[str, object]] = {
        "grpc": {"address": str(layout.containerd_socket)},
        "ttrpc": {"address": f"{layout.containerd_socket}.ttrpc"},
        "debug": {"level": "info"},
        cri: {
            "restrict_oom_score_adj": True,
            "enable_selinux": False,
            "enable_cdi": False,
            "netns_mounts_under_state_dir": True,
        },
        f"{cri}.containerd": {"default_runtime_name": "runc"},
        runc: {"runtime_type": "io.containerd.runc.v2"},
        f"{runc}.options": {
            "BinaryName": str(RUNC),
            "SystemdCgroup": False,
            "Root": str(p["containerd_state"] / "runc"),
        },
        f"{cri}.cni": {"bin_dirs": [str(CNI_BIN_DIR)], "conf_dir": str(p["cni_conf"]), "max_conf_num": 1},
        "plugins.'io.containerd.cri.v1.images'": {"snapshotter": "overlayfs", "discard_unpacked_layers": False},
        "plugins.'io.containerd.cri.v1.images'.pinned_images": {"sandbox": sandbox_image(layout)},
        "plugins.'io.containerd.grpc.v1.cri'": {"stream_server_address": HOST, "stream_server_port": "0"},
        "plugins.'io.containerd.internal.v1.opt'": {"path": str(p["containerd_root"] / "opt")},
        "plugins.'io.containerd.image-verifier.v1.bindir'": {"bin_dir": str(p["containerd_root"] / "verifiers")},
    }
    return _toml(tables, top)


def cni_conflist(layout: Layout) -> dict[str, Any]:
    """The pod network: veths on the cluster's bridge, addresses from its /24, no default route in pods.

    `isGateway` is off so the bridge plugin neither enables forwarding machine-wide nor masquerades: the bridge
    gets its address from `up`, and pods get routes to the node and the Service range only.
    """
    subnet = layout.node_subnet
    prefix = subnet.rsplit(".", 2)[0]
    return {
        "cniVersion": "1.0.0",
        "name": f"agentry-{layout.name}",
        "plugins": [
            {
                "type": "bridge",
                "bridge": layout.bridge,
                "isGateway": False,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(paths(layout)["cni_data"]),
                    "ranges": [
                        [
                            {
                                "subnet": subnet,
                                "rangeStart": f"{prefix}.{layout.octet}.{POD_RANGE_START}",
                                "rangeEnd": f"{prefix}.{layout.octet}.{POD_RANGE_END}",
                                "gateway": layout.node_ip,
                            }
                        ]
                    ],
                    "routes": [{"dst": layout.service_cidr, "gw": layout.node_ip}],
                },
            },
            {"type": "loopback"},
        ],
    }


def kubelet_config(layout: Layout) -> dict[str, Any]:
    """A kubelet that authenticates every caller and asks the API server whether they may; no read-only port.

    Client certificates from the cluster CA and tokens by webhook; authorization by webhook.

    Its cgroups live under the cluster's own cgroup; pod logs, checkpoints and volumes under the cluster's folder.
    Image garbage collection is off: images are imported, not pulled, so a collected one could not come back.
    """
    pki = layout.pki
    p = paths(layout)
    node = ports(layout)
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": layout.node_ip,
        "port": node.kubelet,
        "readOnlyPort": 0,
        "healthzBindAddress": HOST,
        "healthzPort": node.kubelet_healthz,
        "tlsCertFile": str(pki.cert("kubelet-serving")),
        "tlsPrivateKeyFile": str(pki.key("kubelet-serving")),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True, "cacheTTL": "30s"},
            "x509": {"clientCAFile": str(pki.cert("ca"))},
        },
        "authorization": {"mode": "Webhook", "webhook": {"cacheAuthorizedTTL": "30s", "cacheUnauthorizedTTL": "5s"}},
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{layout.cgroup_name}/pods",
        "cgroupsPerQOS": True,
        "enforceNodeAllocatable": ["pods"],
        "failCgroupV1": False,
        "failSwapOn": False,
        "podLogsDir": str(p["pod_logs"]),
        "resolvConf": str(p["resolv_conf"]),
        "clusterDomain": CLUSTER_DOMAIN,
        "clusterDNS": [layout.node_ip],
        "maxPods": 110,
        "serializeImagePulls": False,
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "registerNode": True,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "shutdownGracePeriod": "0s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "0s",
        "nodeStatusReportFrequency": "1m",
        "localStorageCapacityIsolation": True,
    }


def kube_proxy_config(layout: Layout) -> dict[str, Any]:
    """The kube-proxy config: iptables mode, changing no kernel setting.

    No NodePorts on localhost (so no `route_localnet`) and the conntrack table left as the kernel has it. Every
    Service connection is masqueraded, so replies of a pod reached through a Service on the same bridge come back
    through the node and are un-NATed.
    """
    node = ports(layout)
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(layout.kubeconfig("kube-proxy"))},
        "mode": "iptables",
        "bindAddress": layout.node_ip,
        "healthzBindAddress": f"{HOST}:{node.proxy_healthz}",
        "metricsBindAddress": f"{HOST}:{node.proxy_metrics}",
        "clusterCIDR": layout.node_subnet,
        "hostnameOverride": layout.node_name,
        "nodePortAddresses": [f"{layout.node_ip}/32"],
        "iptables": {"masqueradeAll": True, "localhostNodePorts": False, "syncPeriod": "30s", "minSyncPeriod": "1s"},
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
    }


def containerd(layout: Layout) -> list[str]:
    """Run containerd with the cluster's own config file (nothing from /etc/containerd)."""
    return [str(layout.binary("containerd")), "--config", str(paths(layout)["containerd_config"])]


def kubelet(layout: Layout) -> list[str]:
    """The kubelet as node `<cluster>-node`, with a client certificate for `system:node:<name>`."""
    p = paths(layout)
    return [
        str(layout.binary("kubelet")),
        f"--config={p['kubelet_config']}",
        f"--kubeconfig={layout.kubeconfig('kubelet')}",
        f"--root-dir={p['kubelet_root']}",
        f"--node-ip={layout.node_ip}",
        f"--hostname-override={layout.node_name}",
        "--v=1",
    ]


def kube_proxy(layout: Layout) -> list[str]:
    """kube-proxy for the real node."""
    return [str(layout.binary("kube-proxy")), f"--config={paths(layout)['proxy_config']}", "--v=1"]


def kube_proxy_cleanup(layout: Layout) -> list[str]:
    """kube-proxy's own removal of every iptables chain and rule it made."""
    return [str(layout.binary("kube-proxy")), "--cleanup", "--v=1"]


def corefile(layout: Layout) -> str:
    """CoreDNS as the cluster's DNS: Service and pod names from the API server, on the node IP, nothing else.

    There is no upstream resolver on this machine, so names outside the cluster domain fail at once
    (no `forward`); `ready` answers once the API has been read.
    """
    node = ports(layout)
    return (
        f".:53 {{\n"
        f"    bind {layout.node_ip}\n"
        f"    errors\n"
        f"    ready {HOST}:{node.dns_ready}\n"
        f"    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{\n"
        f"        kubeconfig {layout.kubeconfig('coredns')} {layout.name}\n"
        f"        pods insecure\n"
        f"        fallthrough in-addr.arpa ip6.arpa\n"
        f"    }}\n"
        f"    cache 30\n"
        f"}}\n"
    )


def coredns(layout: Layout) -> list[str]:
    """The cluster DNS, a host process on the node IP like the node's other daemons."""
    return [str(layout.binary("coredns")), "-conf", str(paths(layout)["corefile"])]


def coredns_rbac() -> list[tuple[str, dict[str, Any]]]:
    """The ClusterRole and ClusterRoleBinding that let CoreDNS read what it serves (API path, object)."""
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    name = COREDNS_USER
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": [
            {"apiGroups": [""], "resources": ["services", "namespaces", "pods"], "verbs": ["list", "watch"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name}],
    }
    return [(f"{rbac}/clusterroles", role), (f"{rbac}/clusterrolebindings", binding)]


def resolv_conf() -> str:
    """The node's own resolv.conf: no upstream resolver is reachable here.

    Pods with the default `dnsPolicy: ClusterFirst` get CoreDNS on the node IP instead, with the cluster's
    search domains; only `dnsPolicy: Default` pods see this file.
    """
    return "# agentry dev cluster: no upstream DNS server; cluster names resolve through CoreDNS\noptions ndots:1\n"
