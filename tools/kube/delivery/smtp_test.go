package delivery

import (
	"path/filepath"
	"testing"
)

// smtpCAVar names the file of the SMTP server's CA certificates.
const smtpCAVar = "PAYGATE_SMTP_TLS_CA_FILE"

// checkSMTPSecurity: the Deployment sets PAYGATE_SMTP_TLS_CA_FILE exactly
// when config.smtp.caSecret.name is set (and then with TLS on), as a file
// under /etc/paygate/smtp/ that a read-only volume fills from the
// configured key of that Secret; the ConfigMap, the chart's Secret and the
// migration Job carry none of it (the Job sends no mail and mounts no CA).
func checkSMTPSecurity(t *testing.T, objs []Object, vals map[string]any) {
	t.Helper()
	smtp := get(vals, "config", "smtp")
	secret, key := str(smtp, "caSecret", "name"), str(smtp, "caSecret", "key")
	spec := get(one(t, objs, "Deployment", "paygate"), "spec", "template", "spec")
	e, set := containerEnv(spec)[smtpCAVar]
	switch {
	case secret == "" && set:
		t.Errorf("%s = %v although config.smtp.caSecret.name is empty", smtpCAVar, e)
	case secret != "" && !set:
		t.Errorf("config.smtp.caSecret.name is %q but the Deployment does not set %s", secret, smtpCAVar)
	case set:
		if get(e, "valueFrom") != nil {
			t.Errorf("%s = %v, want a literal path", smtpCAVar, e)
		}
		checkSecretFile(t, spec, smtpCAVar, str(e, "value"), "/etc/paygate/smtp/", secret, key)
		if tls := str(smtp, "tls"); tls != "starttls" && tls != "tls" {
			t.Errorf("%s is set with config.smtp.tls %q", smtpCAVar, tls)
		}
	}
	for _, o := range objs {
		for _, k := range sharedSettings(o) {
			if k == smtpCAVar {
				t.Errorf("%s carries %s", o, k)
			}
		}
		if o.Kind() == "Job" && secret != "" {
			for _, v := range asSlice(get(o, "spec", "template", "spec", "volumes")) {
				if str(v, "secret", "secretName") == secret {
					t.Errorf("%s mounts the SMTP CA Secret %q", o, secret)
				}
			}
		}
	}
}

// TestChartSMTPPrivateCA: a relay with a private CA, over STARTTLS (the
// production-like set) and implicit TLS with a key of another name: the
// variable leads to that key of the Secret through a read-only mount at
// /etc/paygate/smtp/ca, and the ConfigMap keeps the TLS mode.
func TestChartSMTPPrivateCA(t *testing.T) {
	production := filepath.Join(chartDir(), "ci", "production-values.yaml")
	minimal := filepath.Join(chartDir(), "ci", "minimal-values.yaml")
	cases := []struct {
		name             string
		args             []string
		tls, secret, key string
	}{
		{"production-values.yaml", []string{"-f", production}, "starttls", "smtp-relay-ca", "ca.crt"},
		{"implicit TLS", []string{"-f", minimal, "--set",
			"config.smtp.tls=tls,config.smtp.port=465,config.smtp.caSecret.name=relay-ca,config.smtp.caSecret.key=relay.pem"},
			"tls", "relay-ca", "relay.pem"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			objs := render(t, tc.args...)
			spec := get(one(t, objs, "Deployment", "paygate"), "spec", "template", "spec")
			file := str(containerEnv(spec)[smtpCAVar], "value")
			if want := "/etc/paygate/smtp/ca/" + tc.key; file != want {
				t.Errorf("%s = %q, want %q", smtpCAVar, file, want)
			}
			checkSecretFile(t, spec, smtpCAVar, file, "/etc/paygate/smtp/ca/", tc.secret, tc.key)
			if got := strMap(get(one(t, objs, "ConfigMap", "paygate"), "data"))["PAYGATE_SMTP_TLS"]; got != tc.tls {
				t.Errorf("ConfigMap PAYGATE_SMTP_TLS = %q, want %q", got, tc.tls)
			}
		})
	}
}
