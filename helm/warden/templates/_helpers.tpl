{{/*
Chart name, truncated to 63 characters.
*/}}
{{- define "warden.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name, truncated to 63 characters.
*/}}
{{- define "warden.fullname" -}}
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
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "warden.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "warden.labels" -}}
helm.sh/chart: {{ include "warden.chart" . }}
{{ include "warden.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels shared by every workload of the release.
*/}}
{{- define "warden.selectorLabels" -}}
app.kubernetes.io/name: {{ include "warden.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Selector labels of the server pods. The component label keeps migration Job
pods out of the Service, Deployment and PodDisruptionBudget.
*/}}
{{- define "warden.serverSelectorLabels" -}}
{{ include "warden.selectorLabels" . }}
app.kubernetes.io/component: server
{{- end }}

{{/*
Container image reference.
*/}}
{{- define "warden.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
Name of the Secret holding the sensitive settings.
*/}}
{{- define "warden.secretName" -}}
{{- .Values.existingSecret | default (include "warden.fullname" .) }}
{{- end }}

{{/*
Environment shared by the server and the migration Job.
*/}}
{{- define "warden.env" -}}
- name: WARDEN_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "warden.secretName" . }}
      key: database-url
- name: WARDEN_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ include "warden.secretName" . }}
      key: keys
- name: WARDEN_TOKEN_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "warden.secretName" . }}
      key: token-key
{{- range $name, $value := .Values.config }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}
