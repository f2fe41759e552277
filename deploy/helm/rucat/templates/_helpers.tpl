{{- define "rucat.fullname" -}}
{{- printf "%s-rucat" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rucat.engineNamespace" -}}
{{- default .Release.Namespace .Values.engineNamespace -}}
{{- end -}}

{{- define "rucat.labels" -}}
app.kubernetes.io/name: rucat
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "rucat.selector" -}}
app.kubernetes.io/name: rucat
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "rucat.image" -}}
{{- $image := index .Values.image .component -}}
{{- printf "%s:%s" $image.repository (default .Chart.AppVersion $image.tag) -}}
{{- end -}}

{{/* The database and resource manager, identical for server and monitors. */}}
{{- define "rucat.backends" -}}
"database": {"Sqlite": {"path": "/var/lib/rucat/rucat.db"}},
"resource_manager": {"Kubernetes": {
  "namespace": {{ include "rucat.engineNamespace" . | toJson }},
  "images": {{ .Values.kubernetes.images | toJson }},
  "image_template": {{ .Values.kubernetes.imageTemplate | toJson }},
  {{- with .Values.kubernetes.imagePullPolicy }}
  "image_pull_policy": {{ . | toJson }},
  {{- end }}
  "service_account": {{ .Values.spark.serviceAccount.name | toJson }},
  "spark35_connect_package": {{ .Values.kubernetes.spark35ConnectPackage | toJson }},
  "force_delete_after_secs": {{ .Values.kubernetes.forceDeleteAfterSecs }},
  "kinds": {{ .Values.kubernetes.kinds | toJson }},
  "driver": {
    {{- with .Values.kubernetes.driver.resources }}
    "resources": {{ . | toJson }},
    {{- end }}
    {{- with .Values.kubernetes.driver.terminationGracePeriodSecs }}
    "termination_grace_period_secs": {{ . }},
    {{- end }}
    "node_selector": {{ .Values.kubernetes.driver.nodeSelector | toJson }},
    "tolerations": {{ .Values.kubernetes.driver.tolerations | toJson }},
    "labels": {{ .Values.kubernetes.driver.labels | toJson }},
    "annotations": {{ .Values.kubernetes.driver.annotations | toJson }}
  }
}}
{{- end -}}

{{/* "logs": the same archive for the server, which serves logs, and the
monitors, which archive them. */}}
{{- define "rucat.logs" -}}
"logs": {
  {{- if .Values.logs.s3.bucket }}
  "archive": {"S3": {{ .Values.logs.s3 | toJson }}},
  {{- else }}
  "archive": {"Filesystem": {"dir": "/var/lib/rucat/logs"}},
  {{- end }}
  "keep_attempts": {{ .Values.logs.keepAttempts | int }},
  "deleted_engine_ttl_secs": {{ .Values.logs.deletedEngineTtlSecs | int64 }},
  "max_bytes_per_attempt": {{ .Values.logs.maxBytesPerAttempt | int64 }},
  "sweep_interval_secs": {{ .Values.logs.sweepIntervalSecs | int64 }}
},
{{- end -}}

{{/* host:port that users reach the gateway at. */}}
{{- define "rucat.gatewayAddress" -}}
{{- if .Values.gateway.advertisedAddress -}}
{{- .Values.gateway.advertisedAddress -}}
{{- else if and .Values.gateway.ingress.enabled .Values.gateway.ingress.host -}}
{{- printf "%s:443" .Values.gateway.ingress.host -}}
{{- else -}}
{{- printf "%s-gateway.%s.svc:%v" (include "rucat.fullname" .) .Release.Namespace .Values.gateway.service.port -}}
{{- end -}}
{{- end -}}

{{- define "rucat.scheme" -}}
{{- if .Values.tls.secretName }}HTTPS{{ else }}HTTP{{ end -}}
{{- end -}}
