{{/*
The operator's configuration as environment variables: the one place where chart values meet the names the
operator reads at start-up (agent_operator/config.py). A missing or invalid value stops the operator with a
message naming the variable.
*/}}
{{- define "agentry.operatorEnv" -}}
- name: AGENTRY_WATCH_NAMESPACES
  value: {{ join "," .Values.watchNamespaces | quote }}
- name: AGENTRY_RUNTIME_IMAGE
  value: {{ include "agentry.runtimeImage" . | quote }}
- name: AGENTRY_LOG_FORMAT
  value: {{ .Values.operator.logFormat | quote }}
- name: AGENTRY_LOG_LEVEL
  value: {{ .Values.operator.logLevel | quote }}
- name: AGENTRY_LIVENESS_ENDPOINT
  value: {{ printf "http://0.0.0.0:%d%s" (int .Values.health.port) .Values.health.path | quote }}
{{- if .Values.metrics.enabled }}
- name: AGENTRY_METRICS_PORT
  value: {{ .Values.metrics.port | quote }}
{{- end }}
- name: AGENTRY_OPERATOR_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end }}
