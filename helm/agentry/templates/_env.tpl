{{/*
The operator's configuration as environment variables: the one place where chart values meet the names the
operator reads at start-up (agent_operator/config.py, `AGENTRY_<FIELD>`). The operator refuses to start, naming
the variable, when a value is invalid.
*/}}
{{- define "agentry.operatorEnv" -}}
{{- $op := .Values.operator -}}
# Empty: every namespace (cluster-wide mode); a comma list: namespace-scoped mode.
- name: AGENTRY_NAMESPACES
  value: {{ join "," .Values.watchNamespaces | quote }}
- name: AGENTRY_RUNTIME_IMAGE
  value: {{ include "agentry.runtimeImage" . | quote }}
- name: AGENTRY_LOG_FORMAT
  value: {{ $op.logFormat | quote }}
- name: AGENTRY_LOG_LEVEL
  value: {{ $op.logLevel | quote }}
- name: AGENTRY_EVENT_LEVEL
  value: {{ $op.eventLevel | quote }}
# kopf's liveness endpoint; the probes of this Deployment point at it.
- name: AGENTRY_LIVENESS_ENDPOINT
  value: {{ printf "http://0.0.0.0:%d%s" (int .Values.health.port) .Values.health.path | quote }}
- name: AGENTRY_REQUEST_TIMEOUT_SECONDS
  value: {{ $op.requestTimeoutSeconds | toString | quote }}
- name: AGENTRY_WATCH_TIMEOUT_SECONDS
  value: {{ $op.watchTimeoutSeconds | toString | quote }}
- name: AGENTRY_HEALTH_POLL_CONCURRENCY
  value: {{ $op.healthPollConcurrency | toString | quote }}
- name: AGENTRY_RETRY_BASE_SECONDS
  value: {{ $op.retryBaseSeconds | toString | quote }}
- name: AGENTRY_RETRY_MAX_SECONDS
  value: {{ $op.retryMaxSeconds | toString | quote }}
- name: AGENTRY_RESYNC_SECONDS
  value: {{ $op.resyncSeconds | toString | quote }}
- name: AGENTRY_NETWORK_POLICY
  value: {{ $op.networkPolicy | toString | quote }}
# The collector agents trace to when their spec names none; empty: only agents with their own endpoint.
- name: AGENTRY_OTLP_ENDPOINT
  value: {{ .Values.tracing.endpoint | quote }}
{{- if .Values.tracing.endpoint }}
# The operator's own spans (one per reconcile) go to the same collector.
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .Values.tracing.endpoint | quote }}
{{- end }}
# Prometheus metrics (path /metrics); empty turns them off.
- name: AGENTRY_METRICS_ENDPOINT
  value: {{ ternary (printf "http://0.0.0.0:%d/metrics" (int .Values.metrics.port)) "" .Values.metrics.enabled | quote }}
# The agents' NetworkPolicies admit the operator's namespace, so that its health poller reaches the pods.
- name: AGENTRY_OPERATOR_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end }}
