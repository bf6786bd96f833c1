{{/*
Each service's config file (services/<name>/src/config.ts), rendered from the values. A test
renders the chart with `helm template` for every values file and parses each of these with the
service's own zod schema. Paths are where the Deployment mounts things:
  /etc/pki/tls/                 the service's mTLS identity (ca.crt, tls.crt, tls.key)
  /etc/pki/https/               the public HTTPS certificate (ra, card-mgmt, audit; ocsp's for agencies' mTLS)
  /etc/pki/officer-ca/          the officers' client CA
  /etc/pki/secrets/database/url the service's postgres:// URL
  /etc/pki/secrets/...          the service's other secrets
*/}}
{{- define "citizen-pki.config" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $svc := .service -}}
{{- $tls := dict "caFile" "/etc/pki/tls/ca.crt" "certFile" "/etc/pki/tls/tls.crt" "keyFile" "/etc/pki/tls/tls.key" -}}
{{- $caSigner := dict "address" (include "citizen-pki.grpcAddress" (dict "root" $root "service" "ca-signer")) "serverIdentity" (include "citizen-pki.identity" (dict "root" $root "service" "ca-signer")) "deadlineMs" 10000 -}}
{{- $base := dict
  "log" (dict "level" $v.logLevel)
  "ops" (dict "host" "0.0.0.0" "port" 9090)
  "database" (dict "urlFile" "/etc/pki/secrets/database/url" "schema" ($svc | replace "-" "_") "maxConnections" $v.database.maxConnections "statementTimeoutMs" $v.database.statementTimeoutMs) -}}
{{- $events := include "citizen-pki.events" . | fromJson -}}
{{- $https := dict "host" "0.0.0.0" "port" 8443 "certFile" "/etc/pki/https/tls.crt" "keyFile" "/etc/pki/https/tls.key" "clientCaFiles" (list (printf "/etc/pki/officer-ca/%s" $v.officerCa.key)) -}}
{{- $config := dict -}}
{{- if eq $svc "ca-signer" -}}
{{- $c := $v.caSigner -}}
{{- $hsm := dict "modulePath" $c.hsm.modulePath "tokenLabel" $c.hsm.tokenLabel "pinFile" "/etc/pki/secrets/hsm/pin" "sessionPoolSize" $c.hsm.sessionPoolSize "workerThreads" $c.hsm.workerThreads "probeIntervalMs" $c.hsm.probeIntervalMs "operationTimeoutMs" $c.hsm.operationTimeoutMs -}}
{{- if $c.hsm.softhsmConfigFile }}{{ $_ := set $hsm "softhsmConfigFile" $c.hsm.softhsmConfigFile }}{{ end -}}
{{- $config = merge (dict
  "grpc" (dict "host" "0.0.0.0" "port" 9443 "tls" $tls)
  "hsm" $hsm
  "allow" (include "citizen-pki.allowConfig" . | fromJson)
  "publication" (dict "crlBaseUrl" $v.publication.crlBaseUrl "ocspUrl" $v.publication.ocspUrl "caIssuersUrl" $v.publication.caIssuersUrl "crlPartitions" $v.publication.crlPartitions)
  "auditConfirmation" (dict "required" $c.auditConfirmation.required "maxUnconfirmedSeconds" $c.auditConfirmation.maxUnconfirmedSeconds)
  "events" (dict "transport" $events "producer" "ca-signer")) $base -}}
{{- else if eq $svc "ra" -}}
{{- $pd := $v.ra.personalData -}}
{{- $enc := list -}}{{- range $pd.encryptionKeys }}{{ $enc = append $enc (dict "id" . "keyFile" (printf "/etc/pki/secrets/personal-data/%s" .)) }}{{ end -}}
{{- $look := list -}}{{- range $pd.lookupKeys }}{{ $look = append $look (dict "id" . "keyFile" (printf "/etc/pki/secrets/personal-data/%s" .)) }}{{ end -}}
{{- $config = merge (dict
  "http" $https
  "grpc" (dict "host" "0.0.0.0" "port" 9443)
  "allow" (include "citizen-pki.allowConfig" . | fromJson)
  "tls" $tls
  "caSigner" $caSigner
  "events" (dict "transport" $events "producer" "ra" "auditProducer" "ra.audit")
  "personalData" (dict "encryptionKeys" $enc "activeEncryptionKey" $pd.activeEncryptionKey "lookupKeys" $look "activeLookupKey" $pd.activeLookupKey "referenceKeyFile" (printf "/etc/pki/secrets/personal-data/%s" $pd.referenceKey))) $base -}}
{{- else if eq $svc "card-mgmt" -}}
{{- $config = merge (dict
  "http" $https
  "tls" $tls
  "ra" (dict "address" (include "citizen-pki.grpcAddress" (dict "root" $root "service" "ra")) "serverIdentity" (include "citizen-pki.identity" (dict "root" $root "service" "ra")) "deadlineMs" 30000)
  "events" (dict "transport" $events "auditProducer" "card-mgmt.audit")
  "cardCentreOffice" $v.cardMgmt.cardCentreOffice
  "adminSecretKeyFile" "/etc/pki/secrets/card-mgmt/admin-secret"
  "transportKeyFile" "/etc/pki/secrets/card-mgmt/transport"
  "fingerprintKeyFile" "/etc/pki/secrets/card-mgmt/fingerprint") $base -}}
{{- else if eq $svc "ocsp" -}}
{{- $config = merge (dict
  "http" (dict "host" "0.0.0.0" "port" 8080 "threads" $v.ocsp.threads)
  "https" (dict "host" "0.0.0.0" "port" 8443 "certFile" "/etc/pki/https/tls.crt" "keyFile" "/etc/pki/https/tls.key")
  "tls" $tls
  "caSigner" $caSigner
  "events" (dict "transport" $events)
  "memory" (dict "maxCertificates" $v.ocsp.memory.maxCertificates "maxResponseBytes" $v.ocsp.memory.maxResponseBytes)) $base -}}
{{- else if eq $svc "crl" -}}
{{- $config = merge (dict
  "http" (dict "host" "0.0.0.0" "port" 8080)
  "admin" (dict "host" "0.0.0.0" "port" 8444 "tls" $tls "allow" $v.crl.adminAllow)
  "tls" $tls
  "caSigner" $caSigner
  "events" (dict "transport" $events "producer" "crl")) $base -}}
{{- else if eq $svc "audit" -}}
{{- $anchors := list -}}{{- range $v.audit.trustAnchors.keys }}{{ $anchors = append $anchors (printf "/etc/pki/trust-anchors/%s" .) }}{{ end -}}
{{- $config = merge (dict
  "http" $https
  "tls" $tls
  "caSigner" $caSigner
  "auditLog" (dict "origin" $v.audit.origin "identity" (include "citizen-pki.identity" (dict "root" $root "service" "audit")))
  "checkpoints" (dict "intervalMs" $v.audit.checkpointIntervalMs "trustAnchorFiles" $anchors)
  "events" (dict "transport" $events "producer" "audit")) $base -}}
{{- end -}}
{{- toPrettyJson $config -}}
{{- end -}}
