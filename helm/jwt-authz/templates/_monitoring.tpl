{{/*
Helpers of the optional monitoring objects (grafana-dashboard.yaml, prometheusrule.yaml). Internal.
*/}}

{{/* PromQL matchers for this release's jwt-authz series: prometheusRule.selector, else the release
     namespace and, in standalone mode, the job the chart's ServiceMonitor gives (the Service name). */}}
{{- define "jwt-authz.monitoring.selector" -}}
{{- if .Values.prometheusRule.selector }}
{{- .Values.prometheusRule.selector }}
{{- else if eq .Values.mode "standalone" }}
{{- printf "namespace=%q,job=%q" .Release.Namespace (include "jwt-authz.fullname" .) }}
{{- else }}
{{- printf "namespace=%q" .Release.Namespace }}
{{- end }}
{{- end }}

{{/* kube-state-metrics matchers for the jwt-authz pods (Deployment pods are <name>-<hash>-<hash>);
     empty in sidecar mode unless prometheusRule.notReady.podSelector is set. */}}
{{- define "jwt-authz.monitoring.podSelector" -}}
{{- if .Values.prometheusRule.notReady.podSelector }}
{{- .Values.prometheusRule.notReady.podSelector }}
{{- else if eq .Values.mode "standalone" }}
{{- printf "namespace=%q,pod=~%q" .Release.Namespace (printf "%s-[a-z0-9]+-[a-z0-9]+" (include "jwt-authz.fullname" .)) }}
{{- end }}
{{- end }}

{{/* Matchers leaving out issuers with a static key set (jwks_inline, jwks_file): never refreshed,
     so their age only grows. Each starts with a comma. */}}
{{- define "jwt-authz.monitoring.refreshedIssuers" -}}
{{- range .Values.config.issuers }}
{{- if or .jwks_inline .jwks_file }}
{{- printf ",issuer!=%q" .issuer }}
{{- end }}
{{- end }}
{{- end }}

{{/* An alert's labels: its severity, then prometheusRule.alertLabels. Call with (dict "root" $ "severity" "warning"). */}}
{{- define "jwt-authz.monitoring.alertLabels" -}}
{{- toYaml (merge (dict "severity" .severity) .root.Values.prometheusRule.alertLabels) }}
{{- end }}
