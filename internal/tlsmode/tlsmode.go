// Package tlsmode names how a connection to a mail server is secured. It is
// the one definition the configuration, the poller, the forwarder and the
// SMTP test sink share; it imports nothing, so any of them may import it.
package tlsmode

// Mode is how a connection is secured, spelled as the configuration spells it.
type Mode string

// The modes.
const (
	Implicit Mode = "implicit" // TLS from the first byte: IMAPS 993, SMTPS 465 (RFC 8314)
	StartTLS Mode = "starttls" // plaintext greeting, then STARTTLS (RFC 3501 §6.2.1, RFC 3207)
	None     Mode = "none"     // plaintext throughout; callers demand an explicit opt-in

	// Opportunistic is for the forwarder's MX hops only: STARTTLS, verified,
	// when the server offers it; plain text when it does not (RFC 3207 §4).
	Opportunistic Mode = "opportunistic"
)
