{{/* Names, labels and the pieces every Herald workload shares. */}}

{{- define "herald.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "herald.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The HTTP components, in the order they are rendered. */}}
{{- define "herald.services" -}}users notifications recommendations scheduler gateway{{- end -}}

{{/* Object name of one component: (dict "root" $ "component" "users") */}}
{{- define "herald.componentName" -}}
{{- printf "%s-%s" (include "herald.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "herald.selectorLabels" -}}
app.kubernetes.io/name: {{ include "herald.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "herald.labels" -}}
{{ include "herald.selectorLabels" . }}
app.kubernetes.io/part-of: herald
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Labels of objects that belong to the release but to no single component. */}}
{{- define "herald.commonLabels" -}}
app.kubernetes.io/name: {{ include "herald.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: herald
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Every Herald pod in the namespace: the release's and the operator's Job pods (which
carry part-of=herald with the name of their resource as instance). */}}
{{- define "herald.releasePodSelector" -}}
app.kubernetes.io/part-of: herald
{{- end -}}

{{- define "herald.image" -}}
{{- $root := .root -}}
{{- $image := .image -}}
{{- $tag := $image.tag | default $root.Values.global.imageTag | default $root.Chart.AppVersion -}}
{{- $repo := $image.repository -}}
{{- if $root.Values.global.imageRegistry -}}
{{- $repo = printf "%s/%s" (trimSuffix "/" $root.Values.global.imageRegistry) $repo -}}
{{- end -}}
{{- if hasPrefix "sha256:" $tag -}}
{{- printf "%s@%s" $repo $tag -}}
{{- else -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}
{{- end -}}

{{- define "herald.pullPolicy" -}}
{{- .image.pullPolicy | default .root.Values.global.imagePullPolicy -}}
{{- end -}}

{{- define "herald.imagePullSecrets" -}}
{{- with .Values.global.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ if kindIs "map" . }}{{ .name }}{{ else }}{{ . }}{{ end }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "herald.serviceAccountName" -}}
{{- if .root.Values.serviceAccount.create -}}
{{- include "herald.componentName" . -}}
{{- else -}}
default
{{- end -}}
{{- end -}}

{{/* Secret names and keys of the infrastructure connection strings. */}}
{{- define "herald.infraSecret" -}}{{ include "herald.fullname" . }}-infra{{- end -}}
{{- define "herald.jwtSecret" -}}
{{- .Values.users.jwt.existingSecret | default (printf "%s-jwt" (include "herald.fullname" .)) -}}
{{- end -}}

{{/* Returns a Secret's value if the Secret exists in the cluster, else a new random one
(so `helm upgrade` keeps generated passwords and keys): (dict "root" $ "name" .. "key" ..) */}}
{{- define "herald.keptSecretValue" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace .name -}}
{{- if and $existing (hasKey $existing.data .key) -}}
{{- index $existing.data .key | b64dec -}}
{{- else -}}
{{- randAlphaNum 32 -}}
{{- end -}}
{{- end -}}

{{/* Environment every Herald process gets: infrastructure, topology, JWT verification.
The connection strings come from <fullname>-infra (keys named like the variables, so the
operator's Jobs can take the same Secret with envFrom) or from the external Secrets. */}}
{{- define "herald.commonEnv" -}}
{{- $root := . -}}
{{- $infra := include "herald.infraSecret" $root -}}
- name: HERALD_ENVIRONMENT
  value: {{ $root.Values.environment | quote }}
- name: HERALD_LOG_LEVEL
  value: {{ $root.Values.logLevel | quote }}
- name: HERALD_LOG_JSON
  value: "true"
{{- range $var, $svc := dict "HERALD_MONGODB_URI" "mongodb" "HERALD_AMQP_URL" "rabbitmq" "HERALD_REDIS_URL" "redis" }}
{{- $v := index $root.Values $svc }}
- name: {{ $var }}
  valueFrom:
    secretKeyRef:
      {{- if and (not $v.enabled) $v.external.existingSecret }}
      name: {{ $v.external.existingSecret }}
      key: {{ $v.external.existingSecretKey }}
      {{- else }}
      name: {{ $infra }}
      key: {{ $var }}
      {{- end }}
{{- end }}
- name: HERALD_JWKS_URL
  value: {{ printf "http://%s:%v/.well-known/jwks.json" (include "herald.componentName" (dict "root" $root "component" "users")) $root.Values.users.port | quote }}
{{- range $k, $v := $root.Values.commonEnv }}
- name: {{ $k }}
  value: {{ $v | quote }}
{{- end }}
{{- end -}}

{{- define "herald.podSecurityContext" -}}
{{ toYaml .Values.podSecurityContext }}
{{- end -}}

{{- define "herald.containerSecurityContext" -}}
{{ toYaml .Values.securityContext }}
{{- end -}}

{{/* Soft anti-affinity spreading a component's replicas over nodes. */}}
{{- define "herald.defaultAffinity" -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "herald.selectorLabels" . | nindent 12 }}
{{- end -}}

{{/* The configuration checks that templates cannot express in the schema. */}}
{{- define "herald.validate" -}}
{{- if and (not .Values.mongodb.enabled) (not .Values.mongodb.external.uri) (not .Values.mongodb.external.existingSecret) -}}
{{- fail "mongodb.enabled=false needs mongodb.external.uri or mongodb.external.existingSecret" -}}
{{- end -}}
{{- if and (not .Values.rabbitmq.enabled) (not .Values.rabbitmq.external.url) (not .Values.rabbitmq.external.existingSecret) -}}
{{- fail "rabbitmq.enabled=false needs rabbitmq.external.url or rabbitmq.external.existingSecret" -}}
{{- end -}}
{{- if and (not .Values.redis.enabled) (not .Values.redis.external.url) (not .Values.redis.external.existingSecret) -}}
{{- fail "redis.enabled=false needs redis.external.url or redis.external.existingSecret" -}}
{{- end -}}
{{- if and .Values.ingress.enabled (not .Values.gateway.enabled) -}}
{{- fail "ingress.enabled needs gateway.enabled" -}}
{{- end -}}
{{- end -}}

{{/* A generated password, the same in every template of one render (the infrastructure
Secret and the broker's configuration must agree): (dict "root" $ "name" .. "key" ..) */}}
{{- define "herald.password" -}}
{{- if not (hasKey .root.Values "__generated") -}}
{{- $_ := set .root.Values "__generated" dict -}}
{{- end -}}
{{- $gen := index .root.Values "__generated" -}}
{{- if not (hasKey $gen .key) -}}
{{- $_ := set $gen .key (include "herald.keptSecretValue" .) -}}
{{- end -}}
{{- index $gen .key -}}
{{- end -}}

{{/* The operator's watched namespaces as JSON: ["*"] for every namespace, else
operator.watchNamespaces with the release namespace first (its Jobs run there). */}}
{{- define "herald.operatorNamespaceList" -}}
{{- $ns := .Values.operator.watchNamespaces | default list -}}
{{- if has "*" $ns -}}
{{- list "*" | toJson -}}
{{- else -}}
{{- prepend (without $ns .Release.Namespace) .Release.Namespace | toJson -}}
{{- end -}}
{{- end -}}

{{/* HERALD_OPERATOR_NAMESPACES: those namespaces, "" for every namespace. */}}
{{- define "herald.operatorNamespaces" -}}
{{- $ns := include "herald.operatorNamespaceList" . | fromJsonArray -}}
{{- if has "*" $ns -}}{{- else -}}{{ $ns | join "," }}{{- end -}}
{{- end -}}

{{/* Secrets the operator's Job pods load whole (envFrom): the chart's infrastructure
Secret and every external one. */}}
{{- define "herald.jobSecrets" -}}
{{- $secrets := list (include "herald.infraSecret" .) -}}
{{- range $svc := list "mongodb" "rabbitmq" "redis" -}}
{{- $v := index $.Values $svc -}}
{{- if and (not $v.enabled) $v.external.existingSecret -}}
{{- $secrets = append $secrets $v.external.existingSecret -}}
{{- end -}}
{{- end -}}
{{- $secrets | uniq | join "," -}}
{{- end -}}

{{/* A probe: the handler (dict), the chart's timing defaults for it (dict) and the
probes.<kind> timing overrides of the values. Usage:
include "herald.probe" (dict "root" $ "kind" "startup" "handler" (dict ...) "defaults" (dict ...)) */}}
{{- define "herald.probe" -}}
{{- $over := index (.root.Values.probes | default dict) .kind | default dict -}}
{{- toYaml (merge (deepCopy .handler) (deepCopy $over) (deepCopy .defaults)) -}}
{{- end -}}
