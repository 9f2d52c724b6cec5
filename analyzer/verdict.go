package analyzer

// Encryption is the end-to-end protection class of a message, as the JSON
// contract of `mailtriage scan --json` spells it.
type Encryption string

// The encryption classes. Signed and encrypted counts as encrypted.
const (
	EncryptionNone                 Encryption = "none"
	EncryptionSMIMEEncrypted       Encryption = "smime-encrypted"
	EncryptionSMIMESigned          Encryption = "smime-signed"
	EncryptionPGPEncrypted         Encryption = "pgp-encrypted"
	EncryptionPGPSigned            Encryption = "pgp-signed"
	EncryptionProprietaryEncrypted Encryption = "proprietary-encrypted"
	EncryptionUnparseable          Encryption = "unparseable"
)

// Encrypted reports whether the helpdesk could not read the message body.
func (e Encryption) Encrypted() bool {
	return e == EncryptionSMIMEEncrypted || e == EncryptionPGPEncrypted || e == EncryptionProprietaryEncrypted
}

// Signed reports whether the message is signed but readable.
func (e Encryption) Signed() bool {
	return e == EncryptionSMIMESigned || e == EncryptionPGPSigned
}

// TransportTLS is what the Received chain says about transport encryption.
type TransportTLS string

// The transport TLS classes.
const (
	TransportTLSYes     TransportTLS = "tls"     // every judged hop used TLS
	TransportTLSPlain   TransportTLS = "plain"   // an external hop did not
	TransportTLSUnknown TransportTLS = "unknown" // nothing tells
)

// Relay is how the message reached the mailbox.
type Relay string

// The relay classes. Only RelayPrivate masks the sender.
const (
	RelayNone      Relay = "none"
	RelayPrivate   Relay = "private"
	RelayList      Relay = "list"
	RelayForwarded Relay = "forwarded"
)

// Action is what is done with a message: a verdict decides forward or
// flag; once the worker has acted, the store records what it did (the
// past-tense actions, spelled as the store keeps them).
type Action string

// The actions.
const (
	ActionForward Action = "forward" // a verdict: forward it
	ActionFlag    Action = "flag"    // a verdict: flag it into the review folder

	ActionForwarded     Action = "forwarded"      // done: sent, marked per after_forward
	ActionFlagged       Action = "flagged"        // done: in the review folder
	ActionForwardFailed Action = "forward-failed" // done: SMTP refused it for good; in the review folder
)

// Class is the policy class of a verdict: the key of the config's policy map.
type Class string

// The policy classes, in the order a verdict is matched against them.
const (
	ClassUnparseable  Class = "unparseable"
	ClassEncrypted    Class = "encrypted"
	ClassSigned       Class = "signed"
	ClassPrivateRelay Class = "private_relay"
	ClassClean        Class = "clean"
)

// Policy maps a class to an action. A class missing from the map falls back
// to DefaultPolicy.
type Policy map[Class]Action

// DefaultPolicy flags encrypted and unparseable mail and forwards the rest.
func DefaultPolicy() Policy {
	return Policy{
		ClassUnparseable:  ActionFlag,
		ClassEncrypted:    ActionFlag,
		ClassSigned:       ActionForward,
		ClassPrivateRelay: ActionForward,
		ClassClean:        ActionForward,
	}
}

// Verdict is what the analyzer says of one message, with its evidence.
type Verdict struct {
	MessageID         string       // without angle brackets; "" when absent
	Subject           string       // as decoded from the header
	From              string       // the From address (addr-spec only)
	Encryption        Encryption   //
	EncryptionScheme  string       // detail: smime-enveloped-data, pgp-mime, pgp-inline, microsoft-purview, ...
	TransportTLS      TransportTLS //
	Relay             Relay        //
	RelayService      string       // apple-hide-my-email, firefox-relay, ..., unknown, or ""
	ReplyToTokenized  bool         //
	RelayAddresses    []string     // alias and reply-token addresses seen (From, Reply-To, Sender), lower-cased
	InReplyTo         []string     // message IDs without brackets
	References        []string     // message IDs without brackets, oldest first
	ThreadKey         string       // root Message-ID of the conversation as far as the headers tell
	NormalizedSubject string       // subject without Re:/Fwd:/AW:/SV:/RE[2]: prefixes, folded white space
	Fingerprint       string       // stable across UID changes: Message-ID plus a hash of stable headers
	Class             Class        // the policy class the verdict fell in
	Action            Action       // what the policy says to do
	Reasons           []string     // each names its evidence and, where it has one, the MIME part path
}
