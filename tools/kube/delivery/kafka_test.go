package delivery

import (
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// kafkaFileVars are the variables that name files paygate reads to speak
// TLS to Kafka.
var kafkaFileVars = []string{"PAYGATE_KAFKA_TLS_CA_FILE", "PAYGATE_KAFKA_TLS_CERT_FILE", "PAYGATE_KAFKA_TLS_KEY_FILE"}

// containerEnv returns the env entries of a pod's first container by name.
func containerEnv(podSpec any) map[string]any {
	env := map[string]any{}
	for _, e := range asSlice(get(podSpec, "containers", 0, "env")) {
		env[str(e, "name")] = e
	}
	return env
}

// mountedFile is where a file variable leads: the Secret and key behind
// the path, through the volume mount that holds it.
type mountedFile struct {
	secret, key string
	readOnly    bool
	mode        int
}

// resolveFile follows a path in the paygate container to the Secret key
// mounted there, or fails the test.
func resolveFile(t *testing.T, podSpec any, file string) mountedFile {
	t.Helper()
	var mount any
	for _, m := range asSlice(get(podSpec, "containers", 0, "volumeMounts")) {
		if str(m, "mountPath") == path.Dir(file) {
			mount = m
		}
	}
	if mount == nil {
		t.Fatalf("%s: no volume is mounted at %s", file, path.Dir(file))
	}
	if str(mount, "subPath") != "" {
		t.Errorf("%s: mounted with subPath, so renewed certificates would not reach the pod", file)
	}
	var vol any
	for _, v := range asSlice(get(podSpec, "volumes")) {
		if str(v, "name") == str(mount, "name") {
			vol = v
		}
	}
	sec := get(vol, "secret")
	if sec == nil {
		t.Fatalf("%s: volume %q is not a Secret volume: %v", file, str(mount, "name"), vol)
	}
	f := mountedFile{secret: str(sec, "secretName"), readOnly: get(mount, "readOnly") == true, mode: 0o644}
	if m := get(sec, "defaultMode"); m != nil {
		f.mode = num(m)
	}
	items := asSlice(get(sec, "items"))
	if len(items) == 0 {
		// The whole Secret: each key is a file of that name.
		f.key = path.Base(file)
		return f
	}
	for _, it := range items {
		if str(it, "path") == path.Base(file) {
			f.key = str(it, "key")
			if m := get(it, "mode"); m != nil {
				f.mode = num(m)
			}
		}
	}
	if f.key == "" {
		t.Fatalf("%s: Secret volume %q has no item at path %s: %v", file, str(mount, "name"), path.Base(file), items)
	}
	return f
}

// wantKafkaSecurity is what a value set asks of Kafka security, with the
// chart's defaults from its own KafkaUser applied (values.yaml,
// config.kafka.tls.clientSecret and config.kafka.sasl).
type wantKafkaSecurity struct {
	tls                           bool
	caSecret, caKey               string
	clientSecret, certKey, keyKey string
	serverName                    string
	mechanism, username           string
	passwordSecret, passwordKey   string
}

func kafkaSecurityOf(vals map[string]any) wantKafkaSecurity {
	tls := get(vals, "config", "kafka", "tls")
	sasl := get(vals, "config", "kafka", "sasl")
	w := wantKafkaSecurity{
		tls:      get(tls, "enabled") == true,
		caSecret: str(tls, "caSecret", "name"), caKey: str(tls, "caSecret", "key"),
		clientSecret: str(tls, "clientSecret", "name"), certKey: str(tls, "clientSecret", "certKey"), keyKey: str(tls, "clientSecret", "keyKey"),
		serverName: str(tls, "serverName"),
		mechanism:  str(sasl, "mechanism"), username: str(sasl, "username"),
		passwordSecret: str(sasl, "passwordSecret", "name"), passwordKey: str(sasl, "passwordSecret", "key"),
	}
	user := get(vals, "strimzi", "user")
	ns := str(vals, "strimzi", "namespace")
	own := get(user, "enabled") == true && (ns == "" || ns == "paygate")
	if own && w.tls && w.clientSecret == "" && str(user, "authentication") == "tls" {
		w.clientSecret = str(user, "name")
	}
	if own && w.mechanism == "SCRAM-SHA-512" && str(user, "authentication") == "scram-sha-512" {
		if w.username == "" {
			w.username = str(user, "name")
		}
		if w.passwordSecret == "" {
			w.passwordSecret = str(user, "name")
		}
	}
	return w
}

// checkKafkaSecurity: the Deployment's Kafka TLS and SASL variables are
// exactly what the values ask for; every file variable names a file that a
// read-only Secret volume puts there, from the configured Secret and key;
// the SASL password only comes from a secretKeyRef; and none of these
// variables reaches the ConfigMap, the chart's Secret or the migration Job.
func checkKafkaSecurity(t *testing.T, objs []Object, vals map[string]any) {
	t.Helper()
	w := kafkaSecurityOf(vals)
	spec := get(one(t, objs, "Deployment", "paygate"), "spec", "template", "spec")
	env := containerEnv(spec)
	value := func(name string) string { return str(env[name], "value") }

	want := map[string]string{}
	files := map[string][2]string{} // variable -> Secret, key
	if w.tls {
		want["PAYGATE_KAFKA_TLS_ENABLED"] = "true"
		if w.caSecret != "" {
			files["PAYGATE_KAFKA_TLS_CA_FILE"] = [2]string{w.caSecret, w.caKey}
		}
		if w.clientSecret != "" {
			files["PAYGATE_KAFKA_TLS_CERT_FILE"] = [2]string{w.clientSecret, w.certKey}
			files["PAYGATE_KAFKA_TLS_KEY_FILE"] = [2]string{w.clientSecret, w.keyKey}
		}
		if w.serverName != "" {
			want["PAYGATE_KAFKA_TLS_SERVER_NAME"] = w.serverName
		}
	}
	if w.mechanism != "" {
		want["PAYGATE_KAFKA_SASL_MECHANISM"] = w.mechanism
		want["PAYGATE_KAFKA_SASL_USERNAME"] = w.username
	}
	got := map[string]string{}
	for name := range env {
		if strings.HasPrefix(name, "PAYGATE_KAFKA_TLS_") || strings.HasPrefix(name, "PAYGATE_KAFKA_SASL_") {
			got[name] = value(name)
		}
	}
	for name := range files {
		want[name] = got[name] // checked below, through the mounts
	}
	if w.mechanism != "" {
		want["PAYGATE_KAFKA_SASL_PASSWORD"] = ""
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Kafka security env = %v, want %v", got, want)
	}

	for name, src := range files {
		checkSecretFile(t, spec, name, value(name), "/etc/paygate/kafka/", src[0], src[1])
	}
	// Every Secret volume is mounted read-only (by construction the chart
	// only has the Kafka and SMTP ones).
	secretVols := map[string]bool{}
	for _, v := range asSlice(get(spec, "volumes")) {
		if get(v, "secret") != nil {
			secretVols[str(v, "name")] = true
		}
	}
	for _, m := range asSlice(get(spec, "containers", 0, "volumeMounts")) {
		if secretVols[str(m, "name")] && get(m, "readOnly") != true {
			t.Errorf("Secret volume %s is mounted writable at %s", str(m, "name"), str(m, "mountPath"))
		}
	}

	if w.mechanism != "" {
		pw := env["PAYGATE_KAFKA_SASL_PASSWORD"]
		ref := get(pw, "valueFrom", "secretKeyRef")
		if get(pw, "value") != nil || str(ref, "name") != w.passwordSecret || str(ref, "key") != w.passwordKey {
			t.Errorf("PAYGATE_KAFKA_SASL_PASSWORD = %v, want only a secretKeyRef to key %q of Secret %q", pw, w.passwordKey, w.passwordSecret)
		}
	}

	// The ConfigMap, the chart's Secret and the migration Job carry none of
	// it: the Job does not talk to Kafka, and a SASL mechanism without the
	// password would fail its configuration check.
	for _, o := range objs {
		for _, k := range sharedSettings(o) {
			if strings.HasPrefix(k, "PAYGATE_KAFKA_TLS_") || strings.HasPrefix(k, "PAYGATE_KAFKA_SASL_") {
				t.Errorf("%s carries %s", o, k)
			}
		}
	}
}

// checkSecretFile: the file variable name=file is an absolute path under
// dir that a read-only Secret volume fills from key of Secret secret, with
// no write bits and nothing for others.
func checkSecretFile(t *testing.T, podSpec any, name, file, dir, secret, key string) {
	t.Helper()
	if !path.IsAbs(file) {
		t.Errorf("%s=%q is not an absolute path", name, file)
		return
	}
	f := resolveFile(t, podSpec, file)
	if f.secret != secret || f.key != key {
		t.Errorf("%s=%s is key %q of Secret %q, want key %q of Secret %q", name, file, f.key, f.secret, key, secret)
	}
	if !f.readOnly {
		t.Errorf("%s: the volume at %s is not mounted readOnly", name, path.Dir(file))
	}
	if f.mode&0o222 != 0 || f.mode&0o007 != 0 {
		t.Errorf("%s: %s has mode %#o: want no write bits and nothing for others", name, file, f.mode)
	}
	if !strings.HasPrefix(file, dir) {
		t.Errorf("%s=%s is not under %s", name, file, dir)
	}
}

// sharedSettings lists the variables an object hands on besides the
// Deployment's own env: the keys of a ConfigMap or Secret, and the env of
// a Job (the migration Job, which runs with the ConfigMap's settings).
func sharedSettings(o Object) []string {
	var keys []string
	switch o.Kind() {
	case "ConfigMap", "Secret":
		for k := range strMap(get(o, "data")) {
			keys = append(keys, k)
		}
	case "Job":
		for _, e := range asSlice(get(o, "spec", "template", "spec", "containers", 0, "env")) {
			keys = append(keys, str(e, "name"))
		}
	}
	return keys
}

// TestChartKafkaMutualTLS: the "everything on" set speaks mutual TLS with
// the client certificate of the chart's own KafkaUser, and the dev values
// with the Secret of k8s/strimzi's KafkaUser; each file variable leads to
// the right key of a read-only Secret volume.
func TestChartKafkaMutualTLS(t *testing.T) {
	for file, clientSecret := range map[string]string{
		filepath.Join(chartDir(), "ci", "full-values.yaml"):            "paygate", // strimzi.user.name
		filepath.Join(repoRoot(), "k8s", "paygate", "values-dev.yaml"): "paygate", // k8s/strimzi/user.yaml
	} {
		t.Run(filepath.Base(file), func(t *testing.T) {
			objs := render(t, "-f", file)
			spec := get(one(t, objs, "Deployment", "paygate"), "spec", "template", "spec")
			env := containerEnv(spec)
			if v := str(env["PAYGATE_KAFKA_TLS_ENABLED"], "value"); v != "true" {
				t.Errorf("PAYGATE_KAFKA_TLS_ENABLED = %q, want true", v)
			}
			for name, want := range map[string][2]string{ // Secret, key
				"PAYGATE_KAFKA_TLS_CA_FILE":   {"paygate-kafka-cluster-ca-cert", "ca.crt"},
				"PAYGATE_KAFKA_TLS_CERT_FILE": {clientSecret, "user.crt"},
				"PAYGATE_KAFKA_TLS_KEY_FILE":  {clientSecret, "user.key"},
			} {
				f := resolveFile(t, spec, str(env[name], "value"))
				if f.secret != want[0] || f.key != want[1] || !f.readOnly {
					t.Errorf("%s leads to key %q of Secret %q (read-only %v), want key %q of Secret %q, read-only",
						name, f.key, f.secret, f.readOnly, want[1], want[0])
				}
			}
		})
	}
}

// TestChartKafkaSCRAM: SCRAM-SHA-512 over TLS with an explicit user and
// Secret (the production-like set) and with the chart's own KafkaUser of
// type scram-sha-512 (user name and Secret default to it): the password is
// a secretKeyRef and never a literal anywhere in the rendered objects.
func TestChartKafkaSCRAM(t *testing.T) {
	production := filepath.Join(chartDir(), "ci", "production-values.yaml")
	minimal := filepath.Join(chartDir(), "ci", "minimal-values.yaml")
	cases := []struct {
		name         string
		args         []string
		user, secret string
	}{
		{"production-values.yaml", []string{"-f", production}, "paygate", "paygate"},
		{"chart's KafkaUser", []string{"-f", minimal, "--set",
			"strimzi.user.enabled=true,strimzi.user.name=paygate-scram,strimzi.user.authentication=scram-sha-512," +
				"config.kafka.tls.enabled=true,config.kafka.sasl.mechanism=SCRAM-SHA-512"}, "paygate-scram", "paygate-scram"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			objs := render(t, tc.args...)
			env := containerEnv(get(one(t, objs, "Deployment", "paygate"), "spec", "template", "spec"))
			if m := str(env["PAYGATE_KAFKA_SASL_MECHANISM"], "value"); m != "SCRAM-SHA-512" {
				t.Errorf("PAYGATE_KAFKA_SASL_MECHANISM = %q, want SCRAM-SHA-512", m)
			}
			if u := str(env["PAYGATE_KAFKA_SASL_USERNAME"], "value"); u != tc.user {
				t.Errorf("PAYGATE_KAFKA_SASL_USERNAME = %q, want %q", u, tc.user)
			}
			pw := env["PAYGATE_KAFKA_SASL_PASSWORD"]
			if get(pw, "value") != nil || str(pw, "valueFrom", "secretKeyRef", "name") != tc.secret ||
				str(pw, "valueFrom", "secretKeyRef", "key") != "password" {
				t.Errorf("PAYGATE_KAFKA_SASL_PASSWORD = %v, want a secretKeyRef to key password of Secret %q", pw, tc.secret)
			}
			// No literal password anywhere: no env entry of any pod has a
			// value for it, and no ConfigMap or Secret the chart renders
			// has it as a key.
			for _, o := range objs {
				for _, c := range podContainers(o) {
					for _, e := range asSlice(get(c, "env")) {
						if str(e, "name") == "PAYGATE_KAFKA_SASL_PASSWORD" && get(e, "value") != nil {
							t.Errorf("%s: PAYGATE_KAFKA_SASL_PASSWORD has a literal value", o)
						}
					}
				}
				if _, ok := strMap(get(o, "data"))["PAYGATE_KAFKA_SASL_PASSWORD"]; ok {
					t.Errorf("%s holds PAYGATE_KAFKA_SASL_PASSWORD", o)
				}
			}
		})
	}
}

func podContainers(o Object) []any {
	switch o.Kind() {
	case "Deployment", "Job":
		return asSlice(get(o, "spec", "template", "spec", "containers"))
	case "Pod":
		return asSlice(get(o, "spec", "containers"))
	}
	return nil
}

// TestChartKafkaUserElsewhere: the chart's KafkaUser in another namespace
// is no default for the client certificate (pods mount only Secrets of
// their own namespace); TLS then runs without one.
func TestChartKafkaUserElsewhere(t *testing.T) {
	objs := render(t, "-f", filepath.Join(chartDir(), "ci", "minimal-values.yaml"), "--set",
		"strimzi.user.enabled=true,strimzi.namespace=kafka,config.kafka.tls.enabled=true")
	env := containerEnv(get(one(t, objs, "Deployment", "paygate"), "spec", "template", "spec"))
	for _, name := range kafkaFileVars {
		if _, ok := env[name]; ok {
			t.Errorf("%s is set although no Secret of the release namespace was named", name)
		}
	}
	if str(env["PAYGATE_KAFKA_TLS_ENABLED"], "value") != "true" {
		t.Errorf("PAYGATE_KAFKA_TLS_ENABLED is not true")
	}
}
