{{/*
Names and labels shared by every template. All helpers are namespaced `agentry.` so they cannot clash with a
parent chart's, and every name is truncated to 63 characters (the DNS label limit of many name fields).
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "agentry.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name used as a prefix for every resource: fullnameOverride, else `<release>-<chart>`, or just the
release name when it already contains the chart name (`helm install agentry` gives `agentry`, not
`agentry-agentry`).
*/}}
{{- define "agentry.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Name of a cluster-scoped object. ClusterRoles are not namespaced, so two releases of the same name in different
namespaces would collide: the release namespace is part of the name.
*/}}
{{- define "agentry.clusterName" -}}
{{- printf "%s-%s" (include "agentry.fullname" .) .Release.Namespace | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* `chart-version`, as the helm.sh/chart label wants it. */}}
{{- define "agentry.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the operator pods; never change them, a Deployment's selector is immutable. */}}
{{- define "agentry.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agentry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Labels on every object the chart creates. */}}
{{- define "agentry.labels" -}}
helm.sh/chart: {{ include "agentry.chart" . }}
{{ include "agentry.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: agentry
{{- end }}

{{/* The operator's ServiceAccount name. */}}
{{- define "agentry.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "agentry.fullname" .) .Values.serviceAccount.name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* An image reference from {repository, tag, digest}: the digest wins, the tag defaults to appVersion. */}}
{{- define "agentry.imageRef" -}}
{{- $image := index . 0 }}
{{- $root := index . 1 }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) }}
{{- end }}
{{- end }}

{{/* The operator image. */}}
{{- define "agentry.image" -}}
{{- include "agentry.imageRef" (list .Values.image .) }}
{{- end }}

{{/* The default agent runtime image, handed to the operator. */}}
{{- define "agentry.runtimeImage" -}}
{{- include "agentry.imageRef" (list .Values.runtimeImage .) }}
{{- end }}

{{/* True (non-empty) when the chart is installed in namespace-scoped mode. */}}
{{- define "agentry.namespaced" -}}
{{- if .Values.watchNamespaces }}true{{ end }}
{{- end }}
