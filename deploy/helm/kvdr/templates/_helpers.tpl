{{/* Names and labels, as `helm create` derives them. */}}
{{- define "kvdr.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kvdr.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "kvdr.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "kvdr.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "kvdr.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "kvdr.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one component: scheduler, px-dumps or restore. */}}
{{- define "kvdr.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kvdr.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "kvdr.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kvdr.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kvdr.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The port of config.service.listen (host:port), which the container, probes and Service use. */}}
{{- define "kvdr.port" -}}
{{ .Values.config.service.listen | splitList ":" | last }}
{{- end }}

{{/*
The scheduler's config: `config` as given, except that while the PX dump DaemonSet is on, the
px-dumps jobs are its own (the scheduler pods have no dump directory to read).
*/}}
{{- define "kvdr.schedulerConfig" -}}
{{- $config := deepCopy .Values.config }}
{{- if .Values.pxDumps.enabled }}
{{- $jobs := list }}
{{- range ($config.jobs | default list) }}
{{- if ne .kind "px-dumps" }}{{ $jobs = append $jobs . }}{{ end }}
{{- end }}
{{- $_ := set $config "jobs" $jobs }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/*
The DaemonSet's config: only the px-dumps jobs, reading the mounted host directory, recording the
node name from the downward API. With leader election its pods elect among themselves under their own
key (the leader is the one that prunes), never competing with the scheduler replicas.
*/}}
{{- define "kvdr.pxDumpsConfig" -}}
{{- $config := deepCopy .Values.config }}
{{- $jobs := list }}
{{- range ($config.jobs | default list) }}
{{- if eq .kind "px-dumps" }}{{ $jobs = append $jobs . }}{{ end }}
{{- end }}
{{- if not $jobs }}
{{- fail "pxDumps.enabled: config.jobs has no job of kind px-dumps for the DaemonSet to run" }}
{{- end }}
{{- $_ := set $config "jobs" $jobs }}
{{- $dumps := $config.pxDumps | default dict }}
{{- $_ = set $dumps "dirs" (list .Values.pxDumps.hostPath) }}
{{- $_ = set $dumps "node" "${NODE_NAME}" }}
{{- $_ = set $config "pxDumps" $dumps }}
{{- with $config.service.leaderElection }}
{{- $_ = set . "key" (printf "%s-px-dumps" (.key | default "kvdr/leader")) }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/* Environment shared by every kvdr container: config path, scratch space, the user's variables. */}}
{{- define "kvdr.env" -}}
- name: KVDR_CONFIG
  value: /etc/kvdr/config/kvdr.yaml
- name: TMPDIR
  value: /tmp
{{- with .Values.env }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "kvdr.volumeMounts" -}}
# A directory of its own: secretMounts may go anywhere else under /etc/kvdr (a mount inside a
# read-only ConfigMap volume could not be created).
- name: config
  mountPath: /etc/kvdr/config
  readOnly: true
- name: tmp
  mountPath: /tmp
- name: state
  mountPath: /var/lib/kvdr
{{- range $i, $m := .Values.secretMounts }}
- name: secret-{{ $i }}
  mountPath: {{ $m.mountPath }}
  readOnly: true
{{- end }}
{{- end }}

{{/* Volumes for kvdr.volumeMounts; `configMap` names the ConfigMap with the kvdr.yaml to use. */}}
{{- define "kvdr.volumes" -}}
- name: config
  configMap:
    name: {{ .configMap }}
- name: tmp
  emptyDir:
    {{- with .ctx.Values.tmp.medium }}
    medium: {{ . }}
    {{- end }}
    sizeLimit: {{ .ctx.Values.tmp.sizeLimit }}
# kvdr's state directory: fs repositories named under it, and the fallback safety-backup spool.
- name: state
  emptyDir: {}
{{- range $i, $m := .ctx.Values.secretMounts }}
- name: secret-{{ $i }}
  secret:
    secretName: {{ $m.secretName }}
    # Readable by the pod's group (fsGroup), not by the world.
    defaultMode: 0440
{{- end }}
{{- end }}

{{- define "kvdr.probes" -}}
# /healthz: the process answers. /readyz: the scheduler has started; a follower is ready too (it serves
# metrics and the status page, and must count for the PodDisruptionBudget and rollouts).
livenessProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 20
  timeoutSeconds: 5
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /readyz, port: http}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
{{- end }}
