// Package secret holds credentials so that they never reach a log line, an
// error, a metric, `check` output or a panic message by accident.
//
// A Secret prints as [redacted] through fmt, log/slog and encoding/json; the
// only way to read it is Reveal, called where the credential goes on the wire.
package secret

import "log/slog"

const redacted = "[redacted]"

// Secret is a credential: a password or an OAuth access token.
type Secret struct {
	value string
}

// New wraps value.
func New(value string) Secret { return Secret{value: value} }

// Reveal returns the credential itself, for the protocol exchange only.
func (s Secret) Reveal() string { return s.value }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.value == "" }

// String implements fmt.Stringer.
func (s Secret) String() string { return redacted }

// GoString implements fmt.GoStringer, so %#v hides the value too.
func (s Secret) GoString() string { return redacted }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText implements encoding.TextMarshaler (and so JSON and YAML).
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
