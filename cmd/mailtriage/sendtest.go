package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/config"
	"github.com/mailtriage/mailtriage/forwarder"
	"github.com/mailtriage/mailtriage/forwarder/smtpclient"
	"github.com/mailtriage/mailtriage/internal/mailheader"
)

// sendTestFrom is the header From of the test message: a customer's
// address, as far as the submission server can tell, since it is not the
// account we log in with. It is in .invalid (RFC 2606 §2): no one owns it,
// it can receive nothing (a helpdesk's auto-reply to it bounces at the
// helpdesk), and it has no DNS, so no SPF or DMARC policy of a real domain
// judges the message on its way, and no real person or company is
// impersonated. What the test shows is the submission server's answer to a
// foreign From, which does not depend on the domain existing: Exchange
// Online's SendAs check and Gmail's rewriting look only at whether the
// account may send as the address.
const sendTestFrom = "mailtriage-send-test@example.invalid"

// sendTestSubject labels the test message; with Auto-Submitted and
// sendTestField a helpdesk rule can drop it.
const sendTestSubject = "mailtriage send test"

// sendTestField labels the test message among our annotation fields.
const sendTestField = "X-Mailtriage-Send-Test"

// sendTestMessage is the test message to the helpdesk addresses to, with a
// Message-ID in idDomain.
func sendTestMessage(to []string, idDomain string, now time.Time) []byte {
	var b strings.Builder
	b.WriteString(mailheader.Field("From", "mailtriage send test <"+sendTestFrom+">"))
	b.WriteString(mailheader.Field("To", strings.Join(to, ", ")))
	b.WriteString(mailheader.Field("Subject", sendTestSubject))
	b.WriteString(mailheader.Field("Date", mailheader.Date(now)))
	b.WriteString(mailheader.Field("Message-ID", mailheader.MessageID(idDomain)))
	b.WriteString(mailheader.Field("Auto-Submitted", "auto-generated")) // RFC 3834 §5
	b.WriteString(mailheader.Field("MIME-Version", "1.0"))
	b.WriteString(mailheader.Field("Content-Type", "text/plain; charset=us-ascii"))
	b.WriteString("\r\n")
	b.WriteString("This message was sent by `mailtriage check --send-test` to learn whether\r\n")
	b.WriteString("the SMTP server of the forward route keeps a customer's From.\r\n\r\n")
	b.WriteString("If this ticket's requester is " + sendTestFrom + ",\r\n")
	b.WriteString("it does. If the requester is mailtriage's own address, the server\r\n")
	b.WriteString("rewrote the From, and customers' tickets would show that address too.\r\n\r\n")
	b.WriteString("It carries " + sendTestField + ": yes; nobody needs to answer it.\r\n")
	return []byte(b.String())
}

// answer explains one kind of reply to the test message. A row matches when
// each of its set fields matches; the first matching row of
// sendTestAnswers wins.
type answer struct {
	code     int    // reply code; 0 matches any
	class    int    // first digit of the reply code; 0 matches any
	enhanced string // RFC 3463 code such as "5.2.252"; "" matches any
	text     string // in the reply text, case-insensitive; "" matches any
	explain  string
}

// sendTestAnswers are the refusals of a foreign From the submission servers
// users have give, in plain words, most specific first.
func sendTestAnswers() []answer {
	const (
		sendAs = "this server will not relay mail in the customer's name; use route mx or a relay that may"
		auth   = "the server did not accept the login of forward.smtp: check username and secret; " +
			"Microsoft 365 also needs SMTP AUTH allowed for the mailbox (535 5.7.139), Gmail an app password or OAuth (535 5.7.8)"
		relay = "the server refuses to relay this message for this account (relay denied): it may not send to that recipient " +
			"or in that From; allow the account to relay on the server, or use route mx or a relay that may"
	)
	return []answer{
		// Exchange Online: the authenticated mailbox has no Send As
		// permission on the header From. Microsoft, "Email non-delivery
		// reports and SMTP errors in Exchange Online", learn.microsoft.com/
		// en-us/exchange/troubleshoot/email-delivery/ndr/non-delivery-reports-in-exchange-online
		// (5.2.252 SendAsDenied; the text names
		// SendAsDeniedException.MapiExceptionSendAsDenied).
		{enhanced: "5.2.252", explain: sendAs},
		{text: "SendAsDenied", explain: sendAs},
		// Exchange Online blocks automatic external forwarding by default in
		// the outbound spam filter policy. Microsoft, "Control automatic
		// external email forwarding in Microsoft 365", learn.microsoft.com/
		// en-us/defender-office-365/outbound-spam-policies-external-email-forwarding.
		{enhanced: "5.7.520", explain: "Microsoft 365 blocks external forwarding (\"Your organization does not allow external forwarding\"): " +
			"a tenant admin sets \"Automatic forwarding rules\" to \"On - Forwarding is enabled\" in an outbound anti-spam policy that covers this mailbox " +
			"(Microsoft Defender portal, Email & collaboration > Policies & rules > Threat policies > Anti-spam policies), " +
			"and checks that no remote domain setting blocks automatic forwarding; or use route mx"},
		// RFC 4954 §6: 530 5.7.0 authentication required, 535 5.7.8
		// credentials invalid. Microsoft, "Enable or disable SMTP AUTH
		// client submission", learn.microsoft.com/en-us/exchange/
		// clients-and-mobile-in-exchange-online/authenticated-client-smtp-submission
		// (535 5.7.139: SMTP AUTH disabled for the tenant or mailbox);
		// Google, support.google.com/mail/?p=BadCredentials (535 5.7.8).
		{code: 530, explain: auth},
		{code: 535, explain: auth},
		{enhanced: "5.7.139", explain: auth},
		{enhanced: "5.7.57", explain: auth},
		// RFC 3463 §3.8: X.7.1 "Delivery not authorized, message refused";
		// RFC 5321 §3.6.2 and Postfix's "Relay access denied".
		{text: "relay", explain: relay},
		{enhanced: "5.7.1", explain: relay},
		// RFC 5321 §4.2.1: 5yz is a permanent refusal, 4yz a transient one.
		{class: 5, explain: "the server refused the message for good; its code and text say why (RFC 3463 names the enhanced codes)"},
		{class: 4, explain: "the server refused the message for now (busy, rate limit, greylisting); try --send-test again later"},
	}
}

// matches reports whether a matches a reply.
func (a answer) matches(code int, enhanced, text string) bool {
	return (a.code == 0 || a.code == code) &&
		(a.class == 0 || a.class == code/100) &&
		(a.enhanced == "" || a.enhanced == enhanced) &&
		(a.text == "" || strings.Contains(strings.ToLower(text), strings.ToLower(a.text)))
}

// explainRefusal says in plain words what a failed send test means.
func explainRefusal(err error) string {
	var code int
	var enhanced, text string
	var se *smtpclient.Error
	var fe *forwarder.Error
	switch {
	case errors.As(err, &se) && se.Code != 0:
		code, enhanced, text = se.Code, se.Secode, se.Line
	case errors.As(err, &fe):
		code, text = fe.Code, fe.Message
	}
	for _, a := range sendTestAnswers() {
		if a.matches(code, enhanced, text) {
			return a.explain
		}
	}
	return "the test message did not reach the server's answer to it; fix the connection first"
}

// acceptance is what an accepted test message means at a server whose host
// name ends in suffix; the first matching row of sendTestAcceptances wins.
type acceptance struct {
	suffix  string
	explain string
}

// sendTestAcceptances: a 250 does not say whether the From was kept, except
// where the server is known to rewrite it.
func sendTestAcceptances() []acceptance {
	const check = "in the helpdesk, the ticket \"" + sendTestSubject + "\" must have the requester " + sendTestFrom +
		"; if it shows our own address, the server rewrote From: use route mx or a relay that keeps it"
	// Gmail sends with the signed-in account as From unless the address is
	// one of its "Send mail as" addresses. Google, "Send emails from a
	// different address or alias", support.google.com/mail/answer/22370.
	gmail := "Gmail accepts it but rewrites From to the signed-in account, since " + sendTestFrom +
		" is not one of its \"Send mail as\" addresses; " + check
	return []acceptance{
		{suffix: "smtp.gmail.com", explain: gmail},
		{suffix: "smtp.googlemail.com", explain: gmail},
		{suffix: "", explain: "the server accepted a foreign From; " + check},
	}
}

// explainAcceptance says what an accepted test message means at address.
func explainAcceptance(address string) string {
	host, _, _ := net.SplitHostPort(address)
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, a := range sendTestAcceptances() {
		if strings.HasSuffix(host, a.suffix) {
			return a.explain
		}
	}
	return ""
}

// sendTest sends the test message over the mailbox's forward.smtp (or, on
// route mx, to the helpdesk domain's MX hosts), on a session of its own, in redirect mode whatever forward.mode says (attach
// would put our address in From and test nothing), to forward.to, and
// explains the answer. Its label, X-Mailtriage-Send-Test, is one of our
// fields: it goes above the message with the annotation, where the
// forwarder renames no field.
func sendTest(ctx context.Context, mb config.Mailbox) checkLine {
	line := checkLine{name: fmt.Sprintf("mailbox %s: send test via smtp %s", mb.Name, mb.Forward.SMTP.Address)}
	var fc forwarder.Config
	var err error
	switch mb.Forward.Route {
	case config.RouteSMTP:
		fc, err = forwarderConfig(mb)
	case config.RouteMX:
		line.name = fmt.Sprintf("mailbox %s: send test via the MX of %s", mb.Name, mb.Forward.MX.Domain)
		fc, err = mxForwarderConfig(mb, slog.New(slog.DiscardHandler))
	case config.RouteIMAP:
		// A test message appended to the folder the helpdesk pulls would
		// only become a ticket: APPEND keeps the original byte for byte,
		// From included, so there is nothing for a server to refuse.
		return checkLine{
			name:   fmt.Sprintf("mailbox %s: send test", mb.Name),
			detail: "route imap appends the original byte for byte, so From is kept; nothing appended",
		}
	default:
		return checkLine{
			name:   fmt.Sprintf("mailbox %s: send test", mb.Name),
			detail: fmt.Sprintf("the send test covers routes smtp and mx; nothing sent on route %s", mb.Forward.Route),
		}
	}
	if err != nil {
		line.err = err
		return line
	}
	fw, err := forwarder.New(fc, slog.New(slog.DiscardHandler))
	if err != nil {
		line.err = err
		return line
	}
	defer fw.Close()
	_, idDomain, _ := strings.Cut(mb.Forward.From, "@")
	msg := sendTestMessage(mb.Forward.To, idDomain, time.Now())
	m, err := analyzer.FromRaw(bytes.NewReader(msg))
	if err != nil {
		line.err = fmt.Errorf("read the test message: %w", err)
		return line
	}
	v := analyzer.New(nil).Classify(m, analyzer.DefaultPolicy())
	fields := forwarder.Annotation(v, false) + mailheader.Field(sendTestField, "yes")
	if err := fw.Redirect(ctx, fields, msg); err != nil {
		line.err = fmt.Errorf("%w: %s", err, explainRefusal(err))
		return line
	}
	line.detail = fmt.Sprintf("From %s to %s accepted: %s", sendTestFrom, strings.Join(mb.Forward.To, ", "), explainAcceptance(mb.Forward.SMTP.Address))
	return line
}
