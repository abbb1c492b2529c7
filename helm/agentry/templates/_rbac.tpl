{{/*
The operator's permissions, written once and used by both RBAC modes: cluster-wide (one ClusterRole) and
namespace-scoped (a Role in each watched namespace plus a small ClusterRole). Each rule names the code that needs
it, verb by verb; nothing is granted "just in case". Tests run the real operator with exactly these rules and
check that it reconciles an agent to Ready without a single refusal, and that the ServiceAccount is refused what
the operator never does (deleting nodes, creating roles, reading Secrets outside its namespaces...).
*/}}

{{/* Rules on objects inside the namespaces the operator watches. */}}
{{- define "agentry.rbac.namespacedRules" -}}
# AgentDeployments. list/watch: kopf's watch that triggers reconciles. get: the reconciler re-reads an agent on
# resync and when a child drifts (apply.py KubeApi.agent). patch: kopf keeps its handler progress and the
# last-handled spec in annotations (handlers.py configure_settings). Never create, update or delete: agents
# belong to their authors.
- apiGroups: ["agentry.dev"]
  resources: ["agentdeployments"]
  verbs: ["get", "list", "watch", "patch"]
# The status subresource: observedGeneration, replicas, url and the Ready/Progressing/Degraded/Stalled conditions from
# the reconciler, healthyReplicas, degradedPods, restarts and lastScale from the health monitor; merge patches
# (apply.py KubeApi.patch_status, one merge patch each writer uses for its own fields).
- apiGroups: ["agentry.dev"]
  resources: ["agentdeployments/status"]
  verbs: ["patch"]
# The scale subresource: the health monitor scales a saturated agent out and back in within its min and max,
# as an HPA would (KubeApi.scale_agent).
- apiGroups: ["agentry.dev"]
  resources: ["agentdeployments/scale"]
  verbs: ["patch"]
# Each agent's children. patch + create: server-side apply (apply.py KubeApi.apply_child); the API server checks
# `create` too when the apply creates the object (the RBAC test failed with 403 without it). list + delete:
# pruning a child the spec no longer asks for, found by the operator's labels (KubeApi.delete_stale: the
# PodDisruptionBudget at one replica, the HPA when autoscaling is off...).
# watch (with list): kopf's per-kind watches that notice a child edited or deleted by hand and restore it
# (handlers.py CHILD_RESOURCES, from the table in kinds.py). get: when a hand edit makes the apply impossible (422), a child without pods
# inside is read to check the agent owns it, then deleted and applied afresh (KubeApi._delete_owned); the
# Deployment also for its readiness (KubeApi.deployment).
- apiGroups: [""]
  resources: ["serviceaccounts", "configmaps", "services"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Secrets: get only, by name, to check that the Secrets an agent references exist and hold the keys it names
# (KubeApi.secret_keys); a missing one becomes Ready=False instead of a pod stuck in CreateContainerConfigError.
# No list or watch (that would read every Secret of the namespace), and values are never copied: pods
# reference the Secrets themselves.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
# Agent pods: kopf lists and watches them by label for the health monitor's pod index (handlers.py pod_event),
# which polls each pod's /health; a pod that stays unhealthy is deleted so that its ReplicaSet replaces it
# (KubeApi.delete_pod). No get, no exec, no logs.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch", "delete"]
# Events: the reconciler and the health monitor post one per change of state through the operator's own client
# (apply.py KubeApi.post_event), kopf its handler outcomes (core v1 Events, create only; neither updates one).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/* Cluster-scoped reads the framework needs in both modes. */}}
{{- define "agentry.rbac.clusterRules" -}}
# kopf lists and watches CustomResourceDefinitions to notice when the AgentDeployment CRD is installed, upgraded
# or removed while it runs (without it, it logs "Not enough permissions to watch for resources" and only
# discovers resources at start-up). Read-only: the chart, not the operator, manages the CRD.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- end }}
