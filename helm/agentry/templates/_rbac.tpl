{{/*
The operator's permissions, written once and used by both RBAC modes: cluster-wide (one ClusterRole) and
namespace-scoped (a Role in each watched namespace plus a small ClusterRole). Each rule says which code needs it.
A test runs the real operator with exactly these rules and checks it reconciles an agent to Ready, and another
checks that the ServiceAccount is refused what it does not need.
*/}}

{{/* Rules on objects inside the namespaces the operator watches. */}}
{{- define "agentry.rbac.namespacedRules" -}}
# AgentDeployments: kopf lists and watches them, and patches them to keep its per-handler progress and the
# last-handled configuration in annotations.
- apiGroups: ["agentry.dev"]
  resources: ["agentdeployments"]
  verbs: ["get", "list", "watch", "patch"]
# The status subresource: observedGeneration, replicas, url and the Ready/Progressing/Degraded conditions.
- apiGroups: ["agentry.dev"]
  resources: ["agentdeployments/status"]
  verbs: ["get", "patch"]
# Children rendered per agent, applied with server-side apply (PATCH; `create` because an apply that creates the
# object is also authorised as a create). `delete` removes a child the spec no longer asks for (the
# PodDisruptionBudget when replicas drop to one, the HPA when autoscaling is switched off, the NetworkPolicy when
# disabled). get/list/watch: drift is noticed and corrected when someone edits or deletes a child by hand.
- apiGroups: [""]
  resources: ["configmaps", "services", "serviceaccounts"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments"]
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
# Secrets: only read, to check that the Secrets an AgentDeployment references exist (a missing one becomes a
# Ready=False condition instead of a pod stuck in CreateContainerConfigError). Values are never copied; pods
# reference the Secrets themselves.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
# Agent pods: the health monitor lists and watches them (by label) to poll each pod's /health, and deletes a pod
# that stays unhealthy so that its ReplicaSet replaces it.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "delete"]
# Events: kopf posts one for each handler outcome, the operator one for each change of state and each error.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* Cluster-scoped reads the framework needs in both modes. */}}
{{- define "agentry.rbac.clusterRules" -}}
# kopf watches CustomResourceDefinitions to notice when the AgentDeployment CRD is installed, upgraded or removed
# while it runs (without this it only discovers resources at start-up and logs a warning).
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
{{- end }}
