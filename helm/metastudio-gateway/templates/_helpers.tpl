{{/* Chart name, truncated to the 63 characters a DNS label allows. */}}
{{- define "metastudio-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: the release name, prefixed to the chart name unless it already contains it. */}}
{{- define "metastudio-gateway.fullname" -}}
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

{{- define "metastudio-gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Standard labels (https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/). */}}
{{- define "metastudio-gateway.labels" -}}
helm.sh/chart: {{ include "metastudio-gateway.chart" . }}
{{ include "metastudio-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: metastudio-gateway
{{- end }}

{{/* Selector labels: stable across upgrades. */}}
{{- define "metastudio-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "metastudio-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "metastudio-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "metastudio-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "metastudio-gateway.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* The Secret holding the credentials: the existing one, or the chart's. */}}
{{- define "metastudio-gateway.secretName" -}}
{{- if .Values.credentials.existingSecret }}
{{- .Values.credentials.existingSecret }}
{{- else }}
{{- printf "%s-credentials" (include "metastudio-gateway.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Whether the chart renders its own Secret. */}}
{{- define "metastudio-gateway.createSecret" -}}
{{- if and (eq .Values.credentials.source "static") .Values.credentials.create (not .Values.credentials.existingSecret) }}true{{ end }}
{{- end }}

{{/* Secret key names: accessKey, secretKey, securityToken ("" = no token). */}}
{{- define "metastudio-gateway.secretKeys" -}}
{{- if .Values.credentials.existingSecret }}
{{- toJson .Values.credentials.existingSecretKeys }}
{{- else }}
{{- $token := ternary "security-token" "" (ne (.Values.credentials.securityToken | default "") "") }}
{{- toJson (dict "accessKey" "access-key" "secretKey" "secret-key" "securityToken" $token) }}
{{- end }}
{{- end }}

{{/* Seconds the pod needs to stop: preStop pause plus the gateway's drain. */}}
{{- define "metastudio-gateway.terminationGracePeriodSeconds" -}}
{{- $server := .Values.config.server | default dict }}
{{- $grace := ceil (hasKey $server "shutdown_grace_seconds" | ternary $server.shutdown_grace_seconds 10) }}
{{- $drain := ceil (hasKey $server "drain_seconds" | ternary $server.drain_seconds 1) }}
{{- $needed := add (int .Values.preStop.seconds) (int $grace) (int $drain) }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $needed 5 }}
{{- else if le (int .Values.terminationGracePeriodSeconds) $needed }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed preStop.seconds + config.server.shutdown_grace_seconds + drain_seconds (%v)" .Values.terminationGracePeriodSeconds $needed) }}
{{- else }}
{{- int .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/* A TOML value: strings as JSON-escaped basic strings (TOML accepts those escapes), numbers as they are. */}}
{{- define "metastudio-gateway.tomlValue" -}}
{{- if kindIs "string" . }}{{ toJson . }}
{{- else if kindIs "slice" . }}[{{ range $i, $v := . }}{{ if $i }}, {{ end }}{{ include "metastudio-gateway.tomlValue" $v }}{{ end }}]
{{- else if kindIs "bool" . }}{{ ternary "true" "false" . }}
{{- else if or (kindIs "int64" .) (kindIs "int" .) }}{{ . }}
{{- /* A whole float as an integer (max_bytes is no 1.34e+08), but only within int64's range. */}}
{{- else if kindIs "float64" . }}{{ if and (eq . (floor .)) (lt . 9e15) (gt . -9e15) }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- else if kindIs "map" . }}
{{- /* An inline table ({ issuer = "corp", claim_values = ["acme"] }); null entries are left out. */}}
{{- $map := . }}
{{- $keys := list }}
{{- range $k := keys $map | sortAlpha }}{{ if not (kindIs "invalid" (index $map $k)) }}{{ $keys = append $keys $k }}{{ end }}{{ end -}}
{ {{- range $i, $k := $keys }}{{ if $i }},{{ end }} {{ include "metastudio-gateway.tomlKey" $k }} = {{ include "metastudio-gateway.tomlValue" (index $map $k) }}{{ end }} }
{{- else }}{{ fail (printf "cannot render %v (%s) as TOML" . (kindOf .)) }}
{{- end }}
{{- end }}

{{/* A TOML key: bare when it may be, else a quoted string. */}}
{{- define "metastudio-gateway.tomlKey" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . }}{{ . }}{{ else }}{{ toJson . }}{{ end }}
{{- end }}

{{/* The gateway's TOML config file: every section of .Values.config, then the tenants. */}}
{{- define "metastudio-gateway.configToml" -}}
# Rendered by the metastudio-gateway Helm chart from its values; edit the values, not this file.
{{- $config := deepCopy (.Values.config | default dict) }}
{{- /* With the shared tier, a pod that has not reached Redis yet counts the pods there should be. */}}
{{- if .Values.shared.existingSecret }}
{{- $shared := $config.shared | default dict }}
{{- if not (hasKey $shared "expected_replicas") }}
{{- $_ := set $shared "expected_replicas" (ternary .Values.autoscaling.minReplicas .Values.replicaCount .Values.autoscaling.enabled) }}
{{- end }}
{{- $_ := set $config "shared" $shared }}
{{- end }}
{{- range $section := keys $config | sortAlpha }}
{{- $table := index $config $section }}
{{- if $table }}

[{{ $section }}]
{{- range $key := keys $table | sortAlpha }}
{{- if not (kindIs "invalid" (index $table $key)) }}
{{ $key }} = {{ include "metastudio-gateway.tomlValue" (index $table $key) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- range $tenant := .Values.tenants }}

[[tenants]]
id = {{ toJson $tenant.id }}
app_user_id = {{ toJson $tenant.app_user_id }}
{{- /* api_key_sha256 may be absent for a tenant only end-user JWTs (oidc) name */}}
{{- range $key := omit $tenant "id" "app_user_id" | keys | sortAlpha }}
{{- if not (kindIs "invalid" (index $tenant $key)) }}
{{ $key }} = {{ include "metastudio-gateway.tomlValue" (index $tenant $key) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The Secret holding the cover_image_url signing keys: the existing one, or the chart's. */}}
{{- define "metastudio-gateway.urlSigningSecretName" -}}
{{- if .Values.urlSigning.existingSecret }}
{{- .Values.urlSigning.existingSecret }}
{{- else }}
{{- printf "%s-url-signing" (include "metastudio-gateway.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Whether the chart renders the signing keys' Secret (urlSigning.keys, discouraged). */}}
{{- define "metastudio-gateway.createUrlSigningSecret" -}}
{{- if and .Values.urlSigning.keys (not .Values.urlSigning.existingSecret) }}true{{ end }}
{{- end }}

{{/* Whether the pods share configured signing keys; empty = each pod makes a random one. */}}
{{- define "metastudio-gateway.urlSigningKeysSet" -}}
{{- if or .Values.urlSigning.existingSecret .Values.urlSigning.keys }}true{{ end }}
{{- end }}
