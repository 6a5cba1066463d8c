{{/* The StatefulSet's name: pods are <fullname>-N, and a hostname <name>-N gives Raft member id N+1. */}}
{{- define "kuboard.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kuboard.peersService" -}}
{{- printf "%s-peers" (include "kuboard.fullname" .) -}}
{{- end -}}

{{- define "kuboard.secretName" -}}
{{- if .Values.secret.create -}}
{{- include "kuboard.fullname" . -}}
{{- else -}}
{{- required "secret.existingSecret is required when secret.create is false" .Values.secret.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "kuboard.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kuboard.labels" -}}
{{ include "kuboard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* true when the replicas form their own Raft group (no external etcd). */}}
{{- define "kuboard.embedded" -}}
{{- if not .Values.etcd.endpoints -}}true{{- end -}}
{{- end -}}

{{/* KUBOARD_RAFT_PEERS: 1=<name>-0.<peers>.<ns>.svc.<domain>:10082,... */}}
{{- define "kuboard.raftPeers" -}}
{{- $name := include "kuboard.fullname" . -}}
{{- $peers := include "kuboard.peersService" . -}}
{{- $list := list -}}
{{- range $i := until (int .Values.replicas) -}}
{{- $list = append $list (printf "%d=%s-%d.%s.%s.svc.%s:%d" (add $i 1) $name $i $peers $.Release.Namespace $.Values.clusterDomain (int $.Values.raft.port)) -}}
{{- end -}}
{{- join "," $list -}}
{{- end -}}

{{/* KUBOARD_AGENT_ENDPOINT: agent.endpoints, or every per-pod agent Service's cluster DNS name. */}}
{{- define "kuboard.agentEndpoints" -}}
{{- if .Values.agent.endpoints -}}
{{- if ne (len .Values.agent.endpoints) (int .Values.replicas) -}}
{{- fail (printf "agent.endpoints lists %d addresses for %d replicas: give one per pod" (len .Values.agent.endpoints) (int .Values.replicas)) -}}
{{- end -}}
{{- join "," .Values.agent.endpoints -}}
{{- else -}}
{{- $name := include "kuboard.fullname" . -}}
{{- $list := list -}}
{{- range $i := until (int .Values.replicas) -}}
{{- $list = append $list (printf "%s-agent-%d.%s.svc.%s:%d" $name $i $.Release.Namespace $.Values.clusterDomain (int $.Values.agent.port)) -}}
{{- end -}}
{{- join "," $list -}}
{{- end -}}
{{- end -}}
