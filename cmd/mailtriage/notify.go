package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/mailtriage/mailtriage/config"
	"github.com/mailtriage/mailtriage/forwarder"
	"github.com/mailtriage/mailtriage/notify"
	"github.com/mailtriage/mailtriage/poller"
)

// mailboxNotifier wires a mailbox's notify block: the notices go over fw,
// the mailbox's forward route, or a forwarder of their own for
// notify.smtp; lim keeps the per-sender limit. nil when notify is off.
func mailboxNotifier(mb config.Mailbox, fw *forwarder.Forwarder, lim notify.Limits, log *slog.Logger) (poller.Notifier, error) {
	nc := mb.Notify
	if nc == nil {
		return nil, nil
	}
	tpl, err := notify.LoadTemplates(nc.TemplateFile, nc.HTMLTemplateFile)
	if err != nil {
		return nil, fmt.Errorf("mailbox %s: notify: %w", mb.Name, err)
	}
	send := fw
	if nc.SMTP != nil {
		if send, err = noticeRoute(mb, log); err != nil {
			return nil, err
		}
	}
	if send == nil {
		return nil, fmt.Errorf("mailbox %s: notify: route %s sends no mail; set notify.smtp", mb.Name, mb.Forward.Route)
	}
	var classes []notify.Class
	for _, c := range nc.Classes {
		classes = append(classes, notify.Class(c))
	}
	own := append([]string{mb.Forward.From, mb.IMAP.Username}, mb.Forward.To...)
	n, err := notify.New(notify.Config{
		From:                 nc.From,
		Classes:              classes,
		Templates:            tpl,
		Operator:             nc.OperatorLine,
		Period:               nc.Period,
		Own:                  own,
		AppleRelayRegistered: nc.AppleRelayRegistered,
	}, send, lim)
	if err != nil {
		return nil, fmt.Errorf("mailbox %s: %w", mb.Name, err)
	}
	return n, nil
}

// noticeRoute is the forwarder of notify.smtp: the forward section's keys,
// with the notice's From as the forwarder's sender and recipient (Send
// names its own envelope; Check tries that address).
func noticeRoute(mb config.Mailbox, log *slog.Logger) (*forwarder.Forwarder, error) {
	nc := mb.Notify
	fc, err := forwarderConfig(config.Mailbox{Name: mb.Name, Forward: config.Forward{
		To: []string{nc.From}, From: nc.From, SMTP: *nc.SMTP,
	}})
	if err != nil {
		return nil, fmt.Errorf("mailbox %s: notify: %w", mb.Name, err)
	}
	fw, err := forwarder.New(fc, log.With("mailbox", mb.Name, "route", "notify"))
	if err != nil {
		return nil, fmt.Errorf("mailbox %s: notify: %w", mb.Name, err)
	}
	return fw, nil
}

// checkNoticeRoute is `check`'s line for a mailbox's notify.smtp.
func checkNoticeRoute(ctx context.Context, mb config.Mailbox) checkLine {
	name := fmt.Sprintf("mailbox %s: notify smtp %s", mb.Name, mb.Notify.SMTP.Address)
	fw, err := noticeRoute(mb, slog.New(slog.DiscardHandler))
	var hello string
	if err == nil {
		cctx, cancel := context.WithTimeout(ctx, checkTimeout)
		hello, err = fw.Check(cctx)
		cancel()
	}
	return checkLine{name: name, detail: fmt.Sprintf("accepts mail from %s (%s, EHLO %s)", mb.Notify.From, mb.Notify.SMTP.TLS, hello), err: err}
}

// mailboxDigester wires a mailbox's digest block over fw, the forward
// route; nil when digest is off.
func mailboxDigester(mb config.Mailbox, fw *forwarder.Forwarder, lim notify.Limits) (poller.Digester, error) {
	dc := mb.Digest
	if dc == nil {
		return nil, nil
	}
	if fw == nil {
		return nil, fmt.Errorf("mailbox %s: digest: it goes over forward.smtp, and route %s has none", mb.Name, mb.Forward.Route)
	}
	from := dc.From
	if from == "" {
		from = mb.Forward.From
	}
	d, err := notify.NewDigester(notify.DigestConfig{From: from, To: dc.To, Folder: mb.ReviewFolder, Period: dc.Period}, fw, lim)
	if err != nil {
		return nil, fmt.Errorf("mailbox %s: %w", mb.Name, err)
	}
	return d, nil
}
