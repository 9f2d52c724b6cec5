package analyzer

// Row is a test message by name, for the agreement tests of package
// analyzer_test (agreement_test.go), which may import the poller.
type Row struct{ Name, Raw string }

// EncryptionRows are the messages of the rule table (encryptionCases).
func EncryptionRows() []Row {
	rows := make([]Row, len(encryptionCases))
	for i, c := range encryptionCases {
		rows[i] = Row{c.name, c.raw}
	}
	return rows
}

// AgreementRows are the messages of agreementCases.
func AgreementRows() []Row {
	rows := make([]Row, len(agreementCases))
	for i, c := range agreementCases {
		rows[i] = Row{c.name, c.raw}
	}
	return rows
}
