package config

import "fmt"

// The SASL mechanisms paygate speaks; the names are Kafka's.
const (
	SASLPlain       = "PLAIN"
	SASLSCRAMSHA256 = "SCRAM-SHA-256"
	SASLSCRAMSHA512 = "SCRAM-SHA-512"
)

// validateSecurity checks the TLS and SASL settings of the Kafka section.
// Whether the files exist and parse is checked when the client is built
// (kafka.NewSaramaConfig), which names the variable as well.
func (k *Kafka) validateSecurity() []VarError {
	var out []VarError
	bad := func(name, format string, args ...any) {
		out = append(out, VarError{Var: Prefix + "_" + name, Reason: fmt.Sprintf(format, args...)})
	}
	if !k.TLSEnabled {
		// A CA or client certificate without TLS is a half-done setup that
		// would otherwise silently connect in clear.
		for name, v := range map[string]string{"KAFKA_TLS_CA_FILE": k.TLSCAFile, "KAFKA_TLS_CERT_FILE": k.TLSCertFile,
			"KAFKA_TLS_KEY_FILE": k.TLSKeyFile, "KAFKA_TLS_SERVER_NAME": k.TLSServerName} {
			if v != "" {
				bad(name, "is set but PAYGATE_KAFKA_TLS_ENABLED is false")
			}
		}
	}
	if (k.TLSCertFile == "") != (k.TLSKeyFile == "") {
		bad("KAFKA_TLS_KEY_FILE", "PAYGATE_KAFKA_TLS_CERT_FILE and PAYGATE_KAFKA_TLS_KEY_FILE go together")
	}
	switch k.SASLMechanism {
	case "":
		if k.SASLUsername != "" || k.SASLPassword != "" {
			bad("KAFKA_SASL_MECHANISM", "must be set when a SASL user name or password is")
		}
		return out
	case SASLPlain, SASLSCRAMSHA256, SASLSCRAMSHA512:
	default:
		bad("KAFKA_SASL_MECHANISM", "must be empty, %s, %s or %s, got %q", SASLPlain, SASLSCRAMSHA256, SASLSCRAMSHA512, k.SASLMechanism)
	}
	// Credentials are secrets: only the kind of problem is reported.
	if k.SASLUsername == "" || k.SASLPassword == "" {
		bad("KAFKA_SASL_PASSWORD", "PAYGATE_KAFKA_SASL_USERNAME and PAYGATE_KAFKA_SASL_PASSWORD are both required with a SASL mechanism")
	}
	if k.SASLMechanism == SASLPlain && !k.TLSEnabled {
		bad("KAFKA_SASL_MECHANISM", "PLAIN sends the password in clear: it needs PAYGATE_KAFKA_TLS_ENABLED=true")
	}
	return out
}
