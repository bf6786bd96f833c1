{{/*
Names, labels and the table of services every template ranges over.
*/}}
{{- define "citizen-pki.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "citizen-pki.fullname" -}}
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

{{/* The object name of one service's Deployment, Service, ServiceAccount...: <fullname>-<service>. */}}
{{- define "citizen-pki.serviceName" -}}
{{- printf "%s-%s" (include "citizen-pki.fullname" .root) .service | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "citizen-pki.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "citizen-pki.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: citizen-pki
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "citizen-pki.selectorLabels" -}}
app.kubernetes.io/name: {{ include "citizen-pki.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
The services: name (the component, the SPIFFE name, the config's schema), the values key, the
ports each one listens on and whether it has an HPA. Ports are the container's; Services expose
the same numbers.
*/}}
{{- define "citizen-pki.serviceTable" -}}
- name: ca-signer
  key: caSigner
  ports: { grpc: 9443, ops: 9090 }
- name: ra
  key: ra
  ports: { https: 8443, grpc: 9443, ops: 9090 }
- name: card-mgmt
  key: cardMgmt
  ports: { https: 8443, ops: 9090 }
- name: ocsp
  key: ocsp
  ports: { http: 8080, https: 8443, ops: 9090 }
  autoscaled: true
- name: crl
  key: crl
  ports: { http: 8080, admin: 8444, ops: 9090 }
  autoscaled: true
- name: audit
  key: audit
  ports: { https: 8443, ops: 9090 }
{{- end -}}

{{- define "citizen-pki.services" -}}
{{- $list := include "citizen-pki.serviceTable" . | fromYamlArray -}}
{{- toJson (dict "items" $list) -}}
{{- end -}}

{{- define "citizen-pki.image" -}}
{{- $img := .root.Values.image -}}
{{- printf "%s/%s%s:%s" $img.registry $img.namePrefix .service (default .root.Chart.AppVersion $img.tag) -}}
{{- end -}}

{{- define "citizen-pki.identity" -}}
{{- printf "spiffe://%s/%s" .root.Values.trustDomain .service -}}
{{- end -}}

{{/* host:port of a service's gRPC port, inside the namespace. */}}
{{- define "citizen-pki.grpcAddress" -}}
{{- printf "%s:9443" (include "citizen-pki.serviceName" .) -}}
{{- end -}}

{{/*
The allow-lists (files/allow-lists.json, generated from packages/grpc/src/allow-lists.ts) of one
gRPC server as its config wants them: RPC -> identities.
*/}}
{{- define "citizen-pki.allowConfig" -}}
{{- $root := .root -}}
{{- $lists := (.root.Files.Get "files/allow-lists.json" | fromJson).servers -}}
{{- $server := index $lists .service -}}
{{- $out := dict -}}
{{- range $rpc, $callers := $server.rpcs -}}
{{- $ids := list -}}
{{- range $callers -}}
{{- if eq . "*" -}}
{{- $ids = append $ids "*" -}}
{{- else -}}
{{- $ids = append $ids (include "citizen-pki.identity" (dict "root" $root "service" .)) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $out $rpc $ids -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{- define "citizen-pki.events" -}}
{{- if eq .root.Values.events.transport "kafka" -}}
{{- toJson (dict "type" "kafka" "brokers" .root.Values.events.kafka.brokers "clientId" (printf "%s-%s" (include "citizen-pki.fullname" .root) .service)) -}}
{{- else -}}
{{- toJson (dict "type" "postgres") -}}
{{- end -}}
{{- end -}}
