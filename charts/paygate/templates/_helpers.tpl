{{/*
Names, labels and the settings shared by the Deployment, the migration Job
and the ConfigMap.
*/}}

{{- define "paygate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "paygate.fullname" -}}
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

{{- define "paygate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels selecting this release's pods (never change them: selectors are immutable). */}}
{{- define "paygate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "paygate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "paygate.labels" -}}
helm.sh/chart: {{ include "paygate.chart" . }}
{{ include "paygate.selectorLabels" . }}
app.kubernetes.io/version: {{ include "paygate.version" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: paygate
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "paygate.version" -}}
{{- default .Chart.AppVersion .Values.image.tag | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "paygate.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end }}
{{- end }}

{{- define "paygate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "paygate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The chart's own Secret is <fullname>-secrets, never <fullname>: Strimzi's
User Operator writes the Secret of KafkaUser "paygate" as "paygate", and the
two would collide in the release namespace.
*/}}
{{- define "paygate.secretName" -}}
{{- default (printf "%s-secrets" (include "paygate.fullname" .) | trunc 63 | trimSuffix "-") .Values.existingSecret }}
{{- end }}

{{- define "paygate.strimziNamespace" -}}
{{- default .Release.Namespace .Values.strimzi.namespace }}
{{- end }}

{{/*
paygate.checkShutdown fails the render when the grace period cannot hold the
whole shutdown: preStop sleep, drain delay, request timeout, and the 30s
paygate allows itself after them for the relay and consumers (fx
StopTimeout in internal/app).
*/}}
{{- define "paygate.checkShutdown" -}}
{{- $s := .Values.shutdown }}
{{- $need := add (include "paygate.preStopSleep" . | int) $s.drainDelaySeconds $s.timeoutSeconds 30 }}
{{- if lt (int $s.terminationGracePeriodSeconds) (int $need) }}
{{- fail (printf "shutdown.terminationGracePeriodSeconds (%d) must be at least preStopSleepSeconds + drainDelaySeconds + timeoutSeconds + 30 = %d" (int $s.terminationGracePeriodSeconds) (int $need)) }}
{{- end }}
{{- end }}

{{/* The preStop sleep in seconds (the kubelet's native sleep action, Kubernetes 1.30+). */}}
{{- define "paygate.preStopSleep" -}}
{{- max 0 (int .Values.shutdown.preStopSleepSeconds) }}
{{- end }}

{{/*
paygate.config renders the non-secret settings as a flat map of variable
names to strings: the ConfigMap's data, and the migration Job's env (which
runs before the ConfigMap exists).
*/}}
{{- define "paygate.config" -}}
{{- $c := .Values.config }}
{{- $brokers := $c.kafka.brokers }}
{{- $smtpHost := $c.smtp.host }}
{{- if eq $c.env "prod" }}
{{- if not $brokers }}
{{- fail "config.kafka.brokers is required with config.env prod: the chart has no production default (k8s/strimzi's TLS bootstrap is paygate-kafka-kafka-bootstrap:9093)" }}
{{- end }}
{{- if not $smtpHost }}
{{- fail "config.smtp.host is required with config.env prod: the chart's default is the dev inbox (mailpit)" }}
{{- end }}
{{- else }}
{{- $brokers = $brokers | default (list "paygate-kafka-kafka-bootstrap:9093") }}
{{- $smtpHost = $smtpHost | default "mailpit" }}
{{- end }}
{{- $p := .Values.provider }}
{{- if and (eq $c.env "prod") (eq $p.name "sandbox") (not $p.url) }}
{{- fail "provider.url is required with provider.name sandbox and config.env prod: the sandbox's default, http://127.0.0.1:8090, is the pod itself (or set provider.name xendit)" }}
{{- end }}
{{- $forbidden := list "PAYGATE_DATABASE_URL" "PAYGATE_JWT_PRIVATE_KEY" "PAYGATE_SMTP_USERNAME" "PAYGATE_SMTP_PASSWORD" "PAYGATE_BOOTSTRAP_ADMIN_PASSWORD" "PAYGATE_KAFKA_SASL_PASSWORD" "PAYGATE_PROVIDER_SECRET_KEY" "PAYGATE_PROVIDER_CALLBACK_TOKEN" }}
{{- $env := dict
  "PAYGATE_ENV" $c.env
  "PAYGATE_LOG_LEVEL" $c.logLevel
  "PAYGATE_HTTP_ADDR" (printf ":%d" (int $c.httpPort))
  "PAYGATE_METRICS_ADDR" (printf ":%d" (int $c.metricsPort))
  "PAYGATE_PPROF_ENABLED" (toString $c.pprofEnabled)
  "PAYGATE_SHUTDOWN_DRAIN_DELAY" (printf "%ds" (int .Values.shutdown.drainDelaySeconds))
  "PAYGATE_SHUTDOWN_TIMEOUT" (printf "%ds" (int .Values.shutdown.timeoutSeconds))
  "PAYGATE_MIGRATE_ON_START" (toString $c.migrateOnStart)
  "PAYGATE_TRUSTED_PROXIES" (join "," $c.trustedProxies)
  "PAYGATE_DATABASE_MAX_CONNS" (toString (int $c.database.maxConns))
  "PAYGATE_DATABASE_MIN_CONNS" (toString (int $c.database.minConns))
  "PAYGATE_KAFKA_BROKERS" (join "," $brokers)
  "PAYGATE_KAFKA_CREATE_TOPICS" (toString $c.kafka.createTopics)
  "PAYGATE_KAFKA_TOPIC_AUTH" $c.kafka.topics.auth
  "PAYGATE_KAFKA_TOPIC_TOPUP" $c.kafka.topics.topup
  "PAYGATE_KAFKA_TOPIC_TRANSFER" $c.kafka.topics.transfer
  "PAYGATE_KAFKA_TOPIC_WITHDRAW" $c.kafka.topics.withdraw
  "PAYGATE_NOTIFY_RETRY_TOPIC" $c.kafka.topics.notifyRetry
  "PAYGATE_NOTIFY_DLQ_TOPIC" $c.kafka.topics.notifyDlq
  "PAYGATE_NOTIFY_GROUP" $c.kafka.groups.notify
  "PAYGATE_PAYOUT_GROUP" $c.kafka.groups.payout
  "PAYGATE_PAYOUT_RETRY_TOPIC" $c.kafka.topics.payoutRetry
  "PAYGATE_PAYOUT_DLQ_TOPIC" $c.kafka.topics.payoutDlq
  "PAYGATE_SMTP_HOST" $smtpHost
  "PAYGATE_SMTP_PORT" (toString (int $c.smtp.port))
  "PAYGATE_SMTP_TLS" $c.smtp.tls
  "PAYGATE_MAIL_FROM" $c.mailFrom
  "PAYGATE_BOOTSTRAP_ADMIN_EMAIL" $c.bootstrapAdminEmail
  "PAYGATE_PROVIDER" $p.name
  "PAYGATE_PROVIDER_URL" $p.url
  "PAYGATE_PROVIDER_TIMEOUT" $p.timeout
  "PAYGATE_PROVIDER_MAX_ATTEMPTS" (toString (int $p.maxAttempts))
  "PAYGATE_PROVIDER_SUCCESS_RETURN_URL" $p.successReturnUrl
  "PAYGATE_PROVIDER_FAILURE_RETURN_URL" $p.failureReturnUrl
  "PAYGATE_TOPUP_EXPIRY" $p.topupExpiry
  "PAYGATE_PROVIDER_POLL_INTERVAL" $p.poll.interval
  "PAYGATE_PROVIDER_POLL_AFTER" $p.poll.after
  "PAYGATE_PROVIDER_EXPIRY_GRACE" $p.poll.expiryGrace
  "PAYGATE_RECONCILE_INTERVAL" $p.reconcile.interval
  "PAYGATE_RECONCILE_WINDOW" $p.reconcile.window
}}
{{- if .Values.otel.enabled }}
{{- $_ := set $env "OTEL_TRACES_EXPORTER" "otlp" }}
{{- $_ := set $env "OTEL_EXPORTER_OTLP_ENDPOINT" .Values.otel.endpoint }}
{{- $_ := set $env "OTEL_EXPORTER_OTLP_PROTOCOL" .Values.otel.protocol }}
{{- $_ := set $env "OTEL_TRACES_SAMPLER" .Values.otel.sampler }}
{{- $_ := set $env "OTEL_TRACES_SAMPLER_ARG" .Values.otel.samplerArg }}
{{- else }}
{{- $_ := set $env "OTEL_TRACES_EXPORTER" "none" }}
{{- end }}
{{- with .Values.otel.resourceAttributes }}
{{- $attrs := list }}
{{- range $k, $v := . }}
{{- $attrs = append $attrs (printf "%s=%s" $k $v) }}
{{- end }}
{{- $_ := set $env "OTEL_RESOURCE_ATTRIBUTES" (join "," $attrs) }}
{{- end }}
{{- range $k, $v := $c.extraEnv }}
{{- if has $k $forbidden }}
{{- fail (printf "config.extraEnv.%s is a secret: set it through secrets or existingSecret" $k) }}
{{- end }}
{{- if or (hasPrefix "PAYGATE_KAFKA_TLS_" $k) (hasPrefix "PAYGATE_KAFKA_SASL_" $k) }}
{{- fail (printf "config.extraEnv.%s: set Kafka TLS and SASL through config.kafka.tls and config.kafka.sasl" $k) }}
{{- end }}
{{- if eq $k "PAYGATE_SMTP_TLS_CA_FILE" }}
{{- fail (printf "config.extraEnv.%s: set the SMTP server's CA through config.smtp.caSecret" $k) }}
{{- end }}
{{- if regexMatch "^PAYGATE_(PROVIDER(_.*)?|RECONCILE_.*|TOPUP_EXPIRY)$" $k }}
{{- fail (printf "config.extraEnv.%s: set the payment provider through provider.*" $k) }}
{{- end }}
{{- $_ := set $env $k (toString $v) }}
{{- end }}
{{- toYaml $env }}
{{- end }}

{{/*
paygate.kafkaSecurity resolves config.kafka.tls and config.kafka.sasl into
what the Deployment renders (as YAML, for fromYaml): the Secrets to mount
and read, the directories they are mounted at, the keys that become file
names. An empty client secret or SASL identity defaults to the chart's own
KafkaUser (strimzi.user) when its authentication matches and it lives in
the release namespace (a pod can only mount Secrets of its own namespace).
It fails on the combinations paygate refuses at start, and on the ones it
cannot see (a Secret named while TLS is off). These settings stay out of
paygate.config: the migration Job does not talk to Kafka, and a SASL
mechanism without its password would fail its config check.
*/}}
{{- define "paygate.kafkaSecurity" -}}
{{- $tls := .Values.config.kafka.tls }}
{{- $sasl := .Values.config.kafka.sasl }}
{{- $user := .Values.strimzi.user }}
{{- $ownUser := and $user.enabled (eq (include "paygate.strimziNamespace" .) .Release.Namespace) }}
{{- if not $tls.enabled }}
{{- range $what, $v := dict "caSecret.name" $tls.caSecret.name "clientSecret.name" $tls.clientSecret.name "serverName" $tls.serverName }}
{{- if $v }}
{{- fail (printf "config.kafka.tls.%s is set but config.kafka.tls.enabled is false: paygate would not use it" $what) }}
{{- end }}
{{- end }}
{{- end }}
{{- $client := $tls.clientSecret.name }}
{{- if and $tls.enabled (not $client) $ownUser (eq $user.authentication "tls") }}
{{- $client = $user.name }}
{{- end }}
{{- if and $client (eq $tls.clientSecret.certKey $tls.clientSecret.keyKey) }}
{{- fail "config.kafka.tls.clientSecret.certKey and keyKey must differ" }}
{{- end }}
{{- $username := $sasl.username }}
{{- $password := $sasl.passwordSecret.name }}
{{- if $sasl.mechanism }}
{{- if and (eq $sasl.mechanism "SCRAM-SHA-512") $ownUser (eq $user.authentication "scram-sha-512") }}
{{- $username = default $user.name $username }}
{{- $password = default $user.name $password }}
{{- end }}
{{- if not $username }}
{{- fail (printf "config.kafka.sasl.username is required with mechanism %s" $sasl.mechanism) }}
{{- end }}
{{- if not $password }}
{{- fail (printf "config.kafka.sasl.passwordSecret.name is required with mechanism %s" $sasl.mechanism) }}
{{- end }}
{{- if and (eq $sasl.mechanism "PLAIN") (not $tls.enabled) }}
{{- fail "config.kafka.sasl.mechanism PLAIN sends the password as is: it needs config.kafka.tls.enabled" }}
{{- end }}
{{- else if or $username $password }}
{{- fail "config.kafka.sasl.username and passwordSecret.name need config.kafka.sasl.mechanism" }}
{{- end }}
tls: {{ $tls.enabled }}
caSecret: {{ $tls.caSecret.name | quote }}
caKey: {{ $tls.caSecret.key | quote }}
caDir: /etc/paygate/kafka/ca
clientSecret: {{ $client | quote }}
certKey: {{ $tls.clientSecret.certKey | quote }}
keyKey: {{ $tls.clientSecret.keyKey | quote }}
clientDir: /etc/paygate/kafka/client
serverName: {{ $tls.serverName | quote }}
mechanism: {{ $sasl.mechanism | quote }}
username: {{ $username | quote }}
passwordSecret: {{ $password | quote }}
passwordKey: {{ $sasl.passwordSecret.key | quote }}
{{- end }}

{{/*
paygate.smtpSecurity resolves config.smtp.caSecret into what the Deployment
renders (as YAML, for fromYaml): the Secret with the SMTP server's CA, the
directory it is mounted at, the key that becomes the file name. It fails on
a CA with tls none, which paygate refuses at start. Like the Kafka TLS
settings it stays out of paygate.config: the migration Job sends no mail
and does not mount the Secret.
*/}}
{{- define "paygate.smtpSecurity" -}}
{{- $smtp := .Values.config.smtp }}
{{- if and $smtp.caSecret.name (eq $smtp.tls "none") }}
{{- fail "config.smtp.caSecret.name is set but config.smtp.tls is none: set it to starttls or tls (paygate refuses PAYGATE_SMTP_TLS_CA_FILE without TLS)" }}
{{- end }}
caSecret: {{ $smtp.caSecret.name | quote }}
caKey: {{ $smtp.caSecret.key | quote }}
caDir: /etc/paygate/smtp/ca
{{- end }}

{{/* paygate.secretData: the chart-managed secret's keys (only those set). */}}
{{- define "paygate.secretData" -}}
{{- $s := .Values.secrets }}
PAYGATE_DATABASE_URL: {{ required "secrets.databaseUrl is required unless existingSecret is set" $s.databaseUrl | b64enc | quote }}
PAYGATE_JWT_PRIVATE_KEY: {{ required "secrets.jwtPrivateKey is required unless existingSecret is set (generate one with `paygate jwt-keygen`)" $s.jwtPrivateKey | b64enc | quote }}
{{- if or $s.smtpUsername $s.smtpPassword }}
PAYGATE_SMTP_USERNAME: {{ required "secrets.smtpUsername goes with secrets.smtpPassword" $s.smtpUsername | b64enc | quote }}
PAYGATE_SMTP_PASSWORD: {{ required "secrets.smtpPassword goes with secrets.smtpUsername" $s.smtpPassword | b64enc | quote }}
{{- end }}
{{- with $s.bootstrapAdminPassword }}
PAYGATE_BOOTSTRAP_ADMIN_PASSWORD: {{ . | b64enc | quote }}
{{- end }}
{{- end }}

{{/*
paygate.providerCredentialsRequired is "true" unless paygate has default
provider credentials: only dev against the sandbox has (the sandbox's
development key and token), as in paygate's configuration.
*/}}
{{- define "paygate.providerCredentialsRequired" -}}
{{- not (and (eq .Values.config.env "dev") (eq .Values.provider.name "sandbox")) }}
{{- end }}

{{/*
paygate.providerSecretData: the provider's credentials in the chart-managed
Secret (only those set), failing when a required one is missing. They are
not in paygate.secretData: the migration Job's hook Secret does without
them (paygate migrate talks to no provider). With existingSecret they must
be that Secret's keys, so values given here would be lost: refused.
*/}}
{{- define "paygate.providerSecretData" -}}
{{- $p := .Values.provider }}
{{- if .Values.existingSecret }}
{{- range $what, $var := dict "secretKey" "PAYGATE_PROVIDER_SECRET_KEY" "callbackToken" "PAYGATE_PROVIDER_CALLBACK_TOKEN" }}
{{- if index $p $what }}
{{- fail (printf "provider.%s is set but so is existingSecret, which the pods read it from: put it in Secret %s as key %s instead" $what $.Values.existingSecret $var) }}
{{- end }}
{{- end }}
{{- else }}
{{- if eq (include "paygate.providerCredentialsRequired" .) "true" }}
{{- $why := ternary (printf "config.env %s" .Values.config.env) (printf "provider.name %s" $p.name) (ne .Values.config.env "dev") }}
{{- if not $p.secretKey }}
{{- fail (printf "provider.secretKey is required with %s: the provider's secret API key (only dev against the sandbox has a default); or set existingSecret with key PAYGATE_PROVIDER_SECRET_KEY" $why) }}
{{- end }}
{{- if not $p.callbackToken }}
{{- fail (printf "provider.callbackToken is required with %s: the token the provider's callbacks carry (only dev against the sandbox has a default); or set existingSecret with key PAYGATE_PROVIDER_CALLBACK_TOKEN" $why) }}
{{- end }}
{{- end }}
{{- with $p.secretKey }}
PAYGATE_PROVIDER_SECRET_KEY: {{ . | b64enc | quote }}
{{- end }}
{{- with $p.callbackToken }}
PAYGATE_PROVIDER_CALLBACK_TOKEN: {{ . | b64enc | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* The pod-level security context shared by every pod of the chart. */}}
{{- define "paygate.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurityContext.runAsUser }}
runAsGroup: {{ .Values.podSecurityContext.runAsGroup }}
fsGroup: {{ .Values.podSecurityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The container-level security context shared by every container. */}}
{{- define "paygate.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}
