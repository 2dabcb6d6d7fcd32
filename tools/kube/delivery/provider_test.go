package delivery

import (
	"encoding/base64"
	"fmt"
	"path/filepath"
	"testing"
)

// providerSecretVars are the payment provider's credentials, which only
// ever reach the pods through a secretKeyRef.
var providerSecretVars = map[string]string{
	"PAYGATE_PROVIDER_SECRET_KEY":     "secretKey",
	"PAYGATE_PROVIDER_CALLBACK_TOKEN": "callbackToken",
}

// providerSettings maps the provider's non-secret variables to their
// value paths under provider.
var providerSettings = map[string][]any{
	"PAYGATE_PROVIDER":                    {"name"},
	"PAYGATE_PROVIDER_URL":                {"url"},
	"PAYGATE_PROVIDER_TIMEOUT":            {"timeout"},
	"PAYGATE_PROVIDER_MAX_ATTEMPTS":       {"maxAttempts"},
	"PAYGATE_PROVIDER_SUCCESS_RETURN_URL": {"successReturnUrl"},
	"PAYGATE_PROVIDER_FAILURE_RETURN_URL": {"failureReturnUrl"},
	"PAYGATE_TOPUP_EXPIRY":                {"topupExpiry"},
	"PAYGATE_PROVIDER_POLL_INTERVAL":      {"poll", "interval"},
	"PAYGATE_PROVIDER_POLL_AFTER":         {"poll", "after"},
	"PAYGATE_PROVIDER_EXPIRY_GRACE":       {"poll", "expiryGrace"},
	"PAYGATE_RECONCILE_INTERVAL":          {"reconcile", "interval"},
	"PAYGATE_RECONCILE_WINDOW":            {"reconcile", "window"},
}

// checkProvider: the provider's settings are the ConfigMap's (and so the
// Deployment's and the migration Job's env) as the values give them; its
// secret key and callback token reach the paygate container only as
// secretKeyRefs to the chart's Secret (or existingSecret), optional exactly
// where paygate has defaults (env dev against the sandbox); the chart's
// Secret holds them as given, and nothing else does: not the ConfigMap,
// not the migration Job's env or hook Secret (paygate migrate talks to no
// provider).
func checkProvider(t *testing.T, objs []Object, vals map[string]any) {
	t.Helper()
	p := get(vals, "provider")
	data := strMap(get(one(t, objs, "ConfigMap", "paygate"), "data"))
	for name, path := range providerSettings {
		if want := fmt.Sprint(get(p, path...)); data[name] != want {
			t.Errorf("ConfigMap %s = %q, want provider.%v = %q", name, data[name], path, want)
		}
	}

	existing, _ := get(vals, "existingSecret").(string)
	secretName := existing
	if secretName == "" {
		secretName = "paygate-secrets"
	}
	optional := str(vals, "config", "env") == "dev" && str(p, "name") == "sandbox"
	env := containerEnv(get(one(t, objs, "Deployment", "paygate"), "spec", "template", "spec"))
	for name, key := range providerSecretVars {
		e, ok := env[name]
		if !ok {
			t.Errorf("the Deployment does not set %s", name)
			continue
		}
		ref := get(e, "valueFrom", "secretKeyRef")
		if get(e, "value") != nil || str(ref, "name") != secretName || str(ref, "key") != name {
			t.Errorf("%s = %v, want only a secretKeyRef to key %s of Secret %s", name, e, name, secretName)
		}
		if got := get(ref, "optional") == true; got != optional {
			t.Errorf("%s: secretKeyRef optional = %v, want %v (env %s, provider %s)", name, got, optional,
				str(vals, "config", "env"), str(p, "name"))
		}
		if existing == "" {
			s := one(t, objs, "Secret", "paygate-secrets")
			v, set := strMap(get(s, "data"))[name]
			want := str(p, key)
			if set != (want != "") {
				t.Errorf("the chart's Secret has %s: %v, want it exactly when provider.%s is set", name, set, key)
			} else if set {
				if b, err := base64.StdEncoding.DecodeString(v); err != nil || string(b) != want {
					t.Errorf("the chart's Secret %s = %q (%v), want provider.%s", name, b, err, key)
				}
			}
			if !set && !optional {
				t.Errorf("%s is required (env %s, provider %s) but not in the chart's Secret", name, str(vals, "config", "env"), str(p, "name"))
			}
		}
	}
	for _, o := range objs {
		if o.Kind() == "Secret" && o.Name() == "paygate-secrets" {
			continue
		}
		for _, k := range sharedSettings(o) {
			if _, secret := providerSecretVars[k]; secret {
				t.Errorf("%s carries %s", o, k)
			}
		}
	}
}

// TestChartProviderCredentials: where the provider's credentials come
// from in each case, and which of them a pod needs to start.
func TestChartProviderCredentials(t *testing.T) {
	minimal := filepath.Join(chartDir(), "ci", "minimal-values.yaml")
	cases := []struct {
		name     string
		args     []string
		secret   string
		optional bool
		inSecret bool
	}{
		{"prod, xendit, in the chart's Secret", []string{"-f", minimal}, "paygate-secrets", false, true},
		{"prod, existing Secret", []string{"-f", minimal, "--set", "existingSecret=paygate-prod,provider.secretKey=,provider.callbackToken="},
			"paygate-prod", false, false},
		{"prod, a sandbox outside the pod", []string{"-f", minimal, "--set", "provider.name=sandbox,provider.url=http://10.0.0.5:8090"},
			"paygate-secrets", false, true},
		{"dev, sandbox, its development credentials", []string{"-f", minimal, "--set",
			"config.env=dev,provider.name=sandbox,provider.secretKey=,provider.callbackToken="}, "paygate-secrets", true, false},
		{"dev, xendit, in the chart's Secret", []string{"-f", minimal, "--set", "config.env=dev"}, "paygate-secrets", false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			objs := render(t, tc.args...)
			env := containerEnv(get(one(t, objs, "Deployment", "paygate"), "spec", "template", "spec"))
			for name := range providerSecretVars {
				ref := get(env[name], "valueFrom", "secretKeyRef")
				if str(ref, "name") != tc.secret || str(ref, "key") != name || (get(ref, "optional") == true) != tc.optional {
					t.Errorf("%s = %v, want a secretKeyRef to key %s of Secret %s, optional %v", name, env[name], name, tc.secret, tc.optional)
				}
			}
			secrets := find(objs, "Secret", "paygate-secrets")
			if tc.secret != "paygate-secrets" {
				if len(secrets) != 0 {
					t.Errorf("the chart renders its Secret although existingSecret is set")
				}
				return
			}
			data := strMap(get(one(t, objs, "Secret", "paygate-secrets"), "data"))
			for name := range providerSecretVars {
				if _, ok := data[name]; ok != tc.inSecret {
					t.Errorf("the chart's Secret has %s: %v, want %v", name, ok, tc.inSecret)
				}
			}
		})
	}
}
