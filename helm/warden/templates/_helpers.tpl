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
Settings the chart sets itself and refuses in .Values.config.
*/}}
{{- define "warden.ownedEnv" -}}
{{- list "WARDEN_LISTEN" "WARDEN_HASH_CONCURRENCY" "WARDEN_ARGON2_MEMORY_KIB" "WARDEN_MIGRATE_ON_START" "WARDEN_TLS_CERT_FILE" "WARDEN_TLS_KEY_FILE" "WARDEN_TLS_CLIENT_CA_FILE" "WARDEN_HEALTH_LISTEN" "WARDEN_HTTP_LISTEN" | toJson -}}
{{- end }}

{{/*
Environment shared by the server, the migration init container and the Job.
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
- name: WARDEN_SIGNING_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ include "warden.secretName" . }}
      key: signing-keys
- name: WARDEN_HASH_CONCURRENCY
  value: {{ include "warden.hashConcurrency" . | quote }}
- name: WARDEN_ARGON2_MEMORY_KIB
  value: {{ .Values.hashing.argon2MemoryKib | int | quote }}
{{- $owned := include "warden.ownedEnv" . | fromJsonArray }}
{{- range $name, $value := .Values.config }}
{{- if has $name $owned }}
{{- fail (printf "%s is set by the chart (see values.yaml: hashing, migrations, tls, health, metrics); do not set it in config" $name) }}
{{- end }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Migration mode, checked.
*/}}
{{- define "warden.migrationMode" -}}
{{- $mode := .Values.migrations.mode | default "onStart" -}}
{{- if not (has $mode (list "onStart" "initContainer" "job")) -}}
{{- fail (printf "migrations.mode must be onStart, initContainer or job, not %q" $mode) -}}
{{- end -}}
{{- $mode -}}
{{- end }}

{{/*
Name of the TLS Secret.
*/}}
{{- define "warden.tlsSecretName" -}}
{{- .Values.tls.secretName | default (printf "%s-tls" (include "warden.fullname" .)) }}
{{- end }}

{{/*
"true" when the plaintext health listener is on (always with TLS).
*/}}
{{- define "warden.healthEnabled" -}}
{{- if or .Values.health.enabled .Values.tls.enabled }}true{{ end -}}
{{- end }}

{{/*
The server's probes' gRPC port: the health listener when it is on.
*/}}
{{- define "warden.probePort" -}}
{{- if include "warden.healthEnabled" . }}{{ .Values.health.port }}{{ else }}50051{{ end -}}
{{- end }}

{{/*
Replica floor, for the PodDisruptionBudget.
*/}}
{{- define "warden.minReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ .Values.autoscaling.minReplicas | int }}{{ else }}{{ .Values.replicaCount | int }}{{ end -}}
{{- end }}

{{/*
Hashing threads; at least 1.
*/}}
{{- define "warden.hashConcurrency" -}}
{{- $n := .Values.hashing.concurrency | int -}}
{{- if lt $n 1 -}}
{{- fail "hashing.concurrency must be at least 1" -}}
{{- end -}}
{{- $n -}}
{{- end }}

{{/*
Peak-memory bound in MiB: concurrency × ceil(max(m, 4096 KiB) / 1024) + 64.
*/}}
{{- define "warden.memoryBoundMiB" -}}
{{- $kib := max (.Values.hashing.argon2MemoryKib | int) 4096 -}}
{{- $perWorker := div (add $kib 1023) 1024 -}}
{{- add (mul (include "warden.hashConcurrency" . | int) $perWorker) 64 -}}
{{- end }}

{{/*
The server's resources: .Values.resources, with memory requests and limits
that are not set filled in as ceil(bound × 1.25) MiB.
*/}}
{{- define "warden.resources" -}}
{{- $resources := deepCopy (.Values.resources | default dict) -}}
{{- $bound := include "warden.memoryBoundMiB" . | int -}}
{{- $memory := printf "%dMi" (div (add (mul $bound 5) 3) 4) -}}
{{- $requests := $resources.requests | default dict -}}
{{- $limits := $resources.limits | default dict -}}
{{- if not (hasKey $requests "memory") }}{{ $_ := set $requests "memory" $memory }}{{ end -}}
{{- if not (hasKey $limits "memory") }}{{ $_ := set $limits "memory" $memory }}{{ end -}}
{{- $_ := set $resources "requests" $requests -}}
{{- $_ := set $resources "limits" $limits -}}
{{- toYaml $resources -}}
{{- end }}
