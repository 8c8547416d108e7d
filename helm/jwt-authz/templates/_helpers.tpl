{{/*
Named templates. Those under "jwt-authz.sidecar." are the public interface for other charts
(see helm/examples/sidecar-pod); call them with this chart's scope:

  {{- include "jwt-authz.sidecar.container" (index .Subcharts "jwt-authz") | nindent 8 }}

Everything else is internal and may change.
*/}}

{{- define "jwt-authz.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "jwt-authz.fullname" -}}
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

{{- define "jwt-authz.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "jwt-authz.selectorLabels" -}}
app.kubernetes.io/name: {{ include "jwt-authz.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "jwt-authz.labels" -}}
helm.sh/chart: {{ include "jwt-authz.chart" . }}
{{ include "jwt-authz.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: authorization
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "jwt-authz.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "jwt-authz.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "jwt-authz.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* Whole seconds in a config duration ("500ms", "10s", "5m", "1h"), rounded up. */}}
{{- define "jwt-authz.durationSeconds" -}}
{{- $n := regexFind "^[0-9]+" . | int }}
{{- $unit := trimPrefix (toString $n) . }}
{{- if eq $unit "ms" }}{{ div (add $n 999) 1000 }}
{{- else if eq $unit "s" }}{{ $n }}
{{- else if eq $unit "m" }}{{ mul $n 60 }}
{{- else if eq $unit "h" }}{{ mul $n 3600 }}
{{- else }}{{ fail (printf "jwt-authz: cannot read duration %q" .) }}
{{- end }}
{{- end }}

{{/* The config file. Every `listen` comes from ports/bindAddress so probes, Service and config
     agree. In sidecar mode the check ports (gRPC, forward-auth) bind loopback: only the pod's own
     proxy calls them; the reverse proxy is the pod's public port. */}}
{{- define "jwt-authz.configFile" -}}
{{- $checkHost := ternary "127.0.0.1" .Values.bindAddress (eq .Values.mode "sidecar") }}
{{- $derived := dict "listen" (dict
      "grpc" (printf "%s:%d" $checkHost (int .Values.ports.grpc))
      "admin" (printf "%s:%d" .Values.bindAddress (int .Values.ports.admin))) }}
{{- if hasKey .Values.config "forward_auth" }}
{{- $_ := set $derived "forward_auth" (dict "listen" (printf "%s:%d" $checkHost (int .Values.ports.forwardAuth))) }}
{{- end }}
{{- if hasKey .Values.config "proxy" }}
{{- $_ := set $derived "proxy" (dict "listen" (printf "%s:%d" .Values.bindAddress (int .Values.ports.proxy))) }}
{{- end }}
{{- toYaml (mergeOverwrite (deepCopy .Values.config) $derived) }}
{{- end }}

{{- define "jwt-authz.configMap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "jwt-authz.fullname" . }}
  labels:
    {{- include "jwt-authz.labels" . | nindent 4 }}
data:
  config.yaml: |
    {{- include "jwt-authz.configFile" . | nindent 4 }}
{{- end }}

{{/* Pod annotation that rolls pods when the config changes (jwt-authz does not hot-reload). */}}
{{- define "jwt-authz.configChecksum" -}}
checksum/jwt-authz-config: {{ include "jwt-authz.configFile" . | sha256sum }}
{{- end }}

{{/* Container-level hardening that satisfies the "restricted" Pod Security Standard on its own,
     whatever pod it is added to. The image needs no writable path. */}}
{{- define "jwt-authz.securityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "jwt-authz.container" -}}
{{- $sidecar := eq .Values.mode "sidecar" -}}
- name: jwt-authz
  image: {{ include "jwt-authz.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  {{- if and $sidecar .Values.sidecar.native }}
  restartPolicy: Always
  {{- end }}
  args: [serve, --config, /etc/jwt-authz/config.yaml]
  env:
    - name: JWT_AUTHZ_LOG
      value: {{ .Values.log.level | quote }}
    - name: JWT_AUTHZ_LOG_FORMAT
      value: {{ .Values.log.format | quote }}
    {{- with .Values.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    {{- if not $sidecar }}
    - name: grpc
      containerPort: {{ .Values.ports.grpc }}
      protocol: TCP
    {{- end }}
    {{- if and (not $sidecar) (hasKey .Values.config "forward_auth") }}
    - name: forward-auth
      containerPort: {{ .Values.ports.forwardAuth }}
      protocol: TCP
    {{- end }}
    {{- if hasKey .Values.config "proxy" }}
    - name: proxy
      containerPort: {{ .Values.ports.proxy }}
      protocol: TCP
    {{- end }}
    - name: admin
      containerPort: {{ .Values.ports.admin }}
      protocol: TCP
  {{- with .Values.startupProbe }}
  startupProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.readinessProbe }}
  readinessProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.livenessProbe }}
  livenessProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if and (not $sidecar) (gt (int .Values.preStopSleepSeconds) 0) }}
  lifecycle:
    preStop:
      sleep:
        seconds: {{ .Values.preStopSleepSeconds }}
  {{- end }}
  {{- with .Values.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- include "jwt-authz.securityContext" . | nindent 4 }}
  volumeMounts:
    - name: jwt-authz-config
      mountPath: /etc/jwt-authz
      readOnly: true
    {{- with .Values.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{- define "jwt-authz.volumes" -}}
- name: jwt-authz-config
  configMap:
    name: {{ include "jwt-authz.fullname" . }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Fails the render on standalone values the schema cannot express. */}}
{{- define "jwt-authz.validate" -}}
{{- $drain := include "jwt-authz.durationSeconds" (.Values.config.drain_timeout | default "10s") | int }}
{{- $needed := add $drain .Values.preStopSleepSeconds }}
{{- if le (int .Values.terminationGracePeriodSeconds) (int $needed) }}
{{- fail (printf "jwt-authz: terminationGracePeriodSeconds (%d) must exceed preStopSleepSeconds + config.drain_timeout (%ds), or in-flight checks are cut off" (int .Values.terminationGracePeriodSeconds) (int $needed)) }}
{{- end }}
{{- if and .Values.autoscaling.enabled (lt (int .Values.autoscaling.maxReplicas) (int .Values.autoscaling.minReplicas)) }}
{{- fail "jwt-authz: autoscaling.maxReplicas must be >= autoscaling.minReplicas" }}
{{- end }}
{{- end }}

{{- define "jwt-authz.requireSidecarMode" -}}
{{- if ne .Values.mode "sidecar" }}
{{- fail "jwt-authz: the jwt-authz.sidecar.* templates need mode: sidecar in this chart's values (otherwise it also renders a standalone Deployment)" }}
{{- end }}
{{- end }}

{{/* === Public interface for sidecar mode === */}}

{{/* A container list item; native sidecar (restartPolicy: Always) for initContainers by default. */}}
{{- define "jwt-authz.sidecar.container" -}}
{{- include "jwt-authz.requireSidecarMode" . }}
{{- include "jwt-authz.container" . }}
{{- end }}

{{/* A volume list item: the ConfigMap rendered by "jwt-authz.sidecar.config". */}}
{{- define "jwt-authz.sidecar.volumes" -}}
{{- include "jwt-authz.requireSidecarMode" . }}
{{- include "jwt-authz.volumes" . }}
{{- end }}

{{/* The ConfigMap holding /etc/jwt-authz/config.yaml, as a whole manifest. */}}
{{- define "jwt-authz.sidecar.config" -}}
{{- include "jwt-authz.requireSidecarMode" . }}
{{- include "jwt-authz.configMap" . }}
{{- end }}

{{/* The pod annotation that rolls the pod when the jwt-authz config changes. */}}
{{- define "jwt-authz.sidecar.podAnnotations" -}}
{{- include "jwt-authz.requireSidecarMode" . }}
{{- include "jwt-authz.configChecksum" . }}
{{- end }}
