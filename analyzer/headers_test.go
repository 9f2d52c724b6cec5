package analyzer

import (
	"strings"
	"testing"
)

// classifyHeader classifies a message made of header lines and a short body.
func classifyHeader(t *testing.T, an *Analyzer, header string) Verdict {
	t.Helper()
	m, err := FromRaw(strings.NewReader(header + "\nHello.\n"))
	if err != nil {
		t.Fatalf("FromRaw: %v", err)
	}
	return an.Classify(m, DefaultPolicy())
}

const baseHeader = "From: Ann <ann@customer.example>\nTo: support@helpdesk.example\nSubject: Hi\nMessage-ID: <t1@customer.example>\n"

func TestTransportTLS(t *testing.T) {
	cases := []struct {
		name     string
		received string
		want     TransportTLS
		reason   string
	}{
		{"Postfix using TLS", "Received: from mx.customer.example (mx.customer.example [198.51.100.7])\n\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\n\tby mx1.helpdesk.example (Postfix) with ESMTPS id 4Xk; Mon, 2 Nov 2026 09:00:00 +0000\n",
			TransportTLSYes, "Received hop 1 (from mx.customer.example by mx1.helpdesk.example): TLS"},
		{"Exim TLS1.3", "Received: from mail.customer.example ([198.51.100.8])\n\tby mx.helpdesk.example with esmtps  (TLS1.3) tls TLS_AES_256_GCM_SHA384\n\t(Exim 4.96) id 1tA; Mon, 02 Nov 2026 09:00:00 +0000\n",
			TransportTLSYes, "TLS"},
		{"Exim X=TLS", "Received: from mail.customer.example ([198.51.100.8]) by mx.helpdesk.example with esmtp (Exim 4.80) (envelope-from <a@customer.example>) id 1t X=TLS1.2:ECDHE_RSA_AES_256_GCM_SHA384:256; Mon, 02 Nov 2026 09:00:00 +0000\n",
			TransportTLSYes, "Exim TLS"},
		{"Sendmail version=TLSv1.3", "Received: from mail.customer.example (mail.customer.example [198.51.100.9])\n\tby mx.helpdesk.example (8.17.1/8.17.1) with ESMTP id 2A\n\t(version=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 bits=256 verify=NOT); Mon, 2 Nov 2026 09:00:00 +0000\n",
			TransportTLSYes, "version=TLS"},
		{"Microsoft SMTP Server with TLS", "Received: from EUR05-AM6-obe.outbound.protection.outlook.com (mail-am6eur05on2090.outbound.protection.outlook.com [40.107.22.90])\n\tby mx.helpdesk.example with Microsoft SMTP Server (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.1; Mon, 2 Nov 2026 09:00:00 +0000\n",
			TransportTLSYes, "version=TLS"},
		{"Gmail ESMTPS", "Received: from mail-sor-f41.google.com (mail-sor-f41.google.com. [209.85.220.41])\n\tby mx.google.com with SMTPS id a1sor; Mon, 02 Nov 2026 01:00:00 -0800 (PST)\nReceived: by 2002:a05:6a10:1234 with SMTP id x; Mon, 2 Nov 2026 01:00:00 -0800\n",
			TransportTLSYes, "with-protocol ESMTPS"},
		{"qmail ESMTPS, internal hops not judged", "Received: from mail.oldisp.example (mail.oldisp.example [198.51.100.61])\n\tby mx1.helpdesk.example with ESMTPS; Mon, 2 Nov 2026 09:00:00 +0000\nReceived: (qmail 28412 invoked by uid 89); 2 Nov 2026 08:40:01 -0000\nReceived: from unknown (HELO webmail.oldisp.example) (10.0.0.12)\n  by mail.oldisp.example with ESMTPA; 2 Nov 2026 08:40:01 -0000\n",
			TransportTLSYes, "Received hop 1"},
		{"Exchange (TLS) and an internal MAPI hop", "Received: from mail.partner.example (203.0.113.20) by EXCH01.helpdesk.example (192.0.2.10) with Microsoft SMTP Server (TLS) id 15.1.2507.6; Mon, 2 Nov 2026 09:00:00 +0000\nReceived: from BYAPR11MB3176.namprd11.prod.outlook.com ([fe80::1%4]) by BYAPR11MB3176.namprd11.prod.outlook.com ([fe80::1%4]) with mapi id 15.20.1; Mon, 2 Nov 2026 08:59:00 +0000\n",
			TransportTLSYes, "TLS (\"(TLS)\")"},
		{"Postfix without TLS", "Received: from mx.customer.example (mx.customer.example [198.51.100.7])\n\tby mx1.helpdesk.example (Postfix) with ESMTP id 4Xk; Mon, 2 Nov 2026 09:00:00 +0000\n",
			TransportTLSPlain, "no TLS (with ESMTP)"},
		{"one plain hop spoils the chain", "Received: from mx.customer.example (mx.customer.example [198.51.100.7])\n\t(using TLSv1.3 with cipher X)\n\tby mx1.helpdesk.example (Postfix) with ESMTPS id 4; Mon, 2 Nov 2026 09:00:00 +0000\nReceived: from relay.isp.example (relay.isp.example [203.0.113.5]) by mx.customer.example with SMTP; Mon, 2 Nov 2026 08:59:00 +0000\n",
			TransportTLSPlain, "Received hop 2 (from relay.isp.example by mx.customer.example): no TLS (with SMTP)"},
		{"qmail from network without TLS", "Received: (qmail 4411 invoked from network); 2 Nov 2026 09:01:12 -0000\nReceived: from unknown (HELO mail.retro.example) (198.51.100.99)\n  by mx1.helpdesk.example with SMTP; 2 Nov 2026 09:01:12 -0000\n",
			TransportTLSPlain, "no TLS"},
		{"qmail: a private literal in HELO is not the client", "Received: from unknown (HELO ?192.168.0.110?) (ann@customer.example@102.69.220.202)\n  by mailserver with SMTP; 2 Feb 2026 01:42:41 -0000\n",
			TransportTLSPlain, "Received hop 1 (from unknown by mailserver): no TLS (with SMTP)"},
		{"Postfix: a private literal as HELO name, a public client", "Received: from [192.168.1.20] (unknown [203.0.113.77])\n\tby mx1.helpdesk.example (Postfix) with ESMTP id 4Xk; Mon, 2 Nov 2026 09:00:00 +0000\n",
			TransportTLSPlain, "no TLS (with ESMTP)"},
		{"Exim: helo= literal left out", "Received: from [203.0.113.8] (helo=[10.0.0.5]) by mx.helpdesk.example with esmtp (Exim 4.96) id 1t; Mon, 02 Nov 2026 09:00:00 +0000\n",
			TransportTLSPlain, "no TLS (with esmtp)"},
		{"a public HELO literal from a private client is internal", "Received: from unknown (HELO 203.0.113.9) (10.0.0.7)\n  by mail.customer.example with SMTP; 2 Feb 2026 01:42:41 -0000\n",
			TransportTLSUnknown, "no hop tells"},
		{"local hops only", "Received: from localhost (localhost [127.0.0.1]) by mx1.helpdesk.example (Postfix) with ESMTP id 1; Mon, 2 Nov 2026 09:00:00 +0000\nReceived: from mx1.helpdesk.example by mbox.helpdesk.example with LMTP id 2; Mon, 2 Nov 2026 09:00:00 +0000\nReceived: from app (10.1.2.3) by mx1.helpdesk.example with SMTP; Mon, 2 Nov 2026 09:00:00 +0000\nReceived: from [::1] (helo=x) by h with esmtp; Mon, 2 Nov 2026 09:00:00 +0000\n",
			TransportTLSUnknown, "no hop tells"},
		{"no Received at all", "",
			TransportTLSUnknown, "no hop tells"},
	}
	an := New(nil)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := classifyHeader(t, an, c.received+baseHeader)
			if v.TransportTLS != c.want {
				t.Errorf("transport %s, want %s; reasons:\n  %s", v.TransportTLS, c.want, strings.Join(v.Reasons, "\n  "))
			}
			if !hasReason(v.Reasons, c.reason) {
				t.Errorf("no reason contains %q; reasons:\n  %s", c.reason, strings.Join(v.Reasons, "\n  "))
			}
		})
	}
}

func TestRelay(t *testing.T) {
	to := "To: support@helpdesk.example\nSubject: Hi\nMessage-ID: <r1@relay.example>\n"
	cases := []struct {
		name      string
		header    string
		relay     Relay
		service   string
		tokenized bool
		addrs     []string
		reason    string
	}{
		{"Apple Hide My Email", "From: a1b2c3d4e5@privaterelay.appleid.com\n", RelayPrivate, "apple-hide-my-email", false,
			[]string{"a1b2c3d4e5@privaterelay.appleid.com"}, "From: a1b2c3d4e5@privaterelay.appleid.com is a apple-hide-my-email (Sign in with Apple private relay) alias"},
		{"iCloud+ Hide My Email alias at icloud.com", "From: fabulous_tacos_02@icloud.com\n", RelayPrivate, "apple-hide-my-email", false,
			[]string{"fabulous_tacos_02@icloud.com"}, "is a apple-hide-my-email (iCloud+ Hide My Email) alias"},
		{"an ordinary iCloud user is not masked", "From: Ann Smith <ann.smith@icloud.com>\n", RelayNone, "", false, nil, ""},
		{"a forged Sender at privaterelay.appleid.com is not believed", "Received: from architect.spam.example (89.168.124.34) by AMS0EPF000001B6.mail.protection.outlook.com (10.167.16.1) with Microsoft SMTP Server id 15.20.1; Mon, 2 Nov 2026 09:00:00 +0000\nSender: contact@privaterelay.appleid.com\nFrom: Rewards <rewards@survey.example>\n", RelayNone, "", false, nil,
			"Sender: contact@privaterelay.appleid.com is a apple-hide-my-email (Sign in with Apple private relay) address, but From is not and no Received hop comes from its hosts: not believed"},
		{"a Sender at the relay with Apple's hosts in Received is believed", "Received: from st43p00im-zteg10061901.me.com (st43p00im-zteg10061901.me.com [17.58.63.168]) by mx1.helpdesk.example (Postfix) with ESMTPS id 9; Mon, 2 Nov 2026 09:00:00 +0000\nSender: k7q2m9x4@privaterelay.appleid.com\nFrom: Ann <ann@customer.example>\n", RelayPrivate, "apple-hide-my-email", false,
			[]string{"k7q2m9x4@privaterelay.appleid.com"}, "Sender: k7q2m9x4@privaterelay.appleid.com is a apple-hide-my-email"},
		{"Firefox Relay mask on a subdomain", "From: Ann <x7k2q9@ann.mozmail.com>\n", RelayPrivate, "firefox-relay", false,
			[]string{"x7k2q9@ann.mozmail.com"}, "firefox-relay alias"},
		{"Firefox Relay [via Relay] with reply address", "From: \"shop@store.example [via Relay]\" <x7k2q9@mozmail.com>\nReply-To: replies@relay.firefox.com\n", RelayPrivate, "firefox-relay", true,
			[]string{"x7k2q9@mozmail.com", "replies@relay.firefox.com"}, "display name ends in \"[via Relay]\""},
		{"DuckDuckGo alias", "From: w11tzqdr@duck.com\n", RelayPrivate, "duckduckgo", false, []string{"w11tzqdr@duck.com"}, "duckduckgo alias"},
		{"DuckDuckGo reply token in Reply-To", "From: Ann <w11tzqdr@duck.com>\nReply-To: support_at_helpdesk.example_abcdef12@duck.com\n", RelayPrivate, "duckduckgo", true,
			[]string{"w11tzqdr@duck.com", "support_at_helpdesk.example_abcdef12@duck.com"}, "duckduckgo reply token"},
		{"SimpleLogin headers", "From: ann.smith@slmail.me\nX-SimpleLogin-Type: Forward\nX-SimpleLogin-EmailLog-ID: 123\n", RelayPrivate, "simplelogin", false,
			[]string{"ann.smith@slmail.me"}, "header X-SimpleLogin-Type names simplelogin"},
		{"SimpleLogin reverse alias", "From: \"John - john at shop.example\" <ra+abcd1234efgh@simplelogin.co>\nReply-To: ra+abcd1234efgh@simplelogin.co\n", RelayPrivate, "simplelogin", true,
			[]string{"ra+abcd1234efgh@simplelogin.co"}, "simplelogin reply token"},
		{"Proton Pass", "From: shop.ann123@passmail.net\n", RelayPrivate, "proton-pass", false, []string{"shop.ann123@passmail.net"}, "proton-pass alias"},
		{"addy.io alias and headers", "From: shop@ann.anonaddy.com\nX-AnonAddy-Original-Sender: ann@real.example\n", RelayPrivate, "addy", false,
			[]string{"shop@ann.anonaddy.com"}, "header X-AnonAddy-Original-Sender names addy"},
		{"addy.io reply form", "From: shop@ann.anonaddy.me\nReply-To: shop+support=helpdesk.example@ann.anonaddy.me\n", RelayPrivate, "addy", true,
			[]string{"shop@ann.anonaddy.me", "shop+support=helpdesk.example@ann.anonaddy.me"}, "addy reply token"},
		{"Fastmail masked email", "From: river.table1234@fastmail.com\n", RelayPrivate, "fastmail-masked", false,
			[]string{"river.table1234@fastmail.com"}, "fastmail-masked alias"},
		{"an ordinary Fastmail user is not masked", "From: ann@fastmail.com\n", RelayNone, "", false, nil, ""},
		{"unknown relay rewrote the sender", "From: \"ann at customer.example\" <k3j4h5g6f7d8s9a0q1w2@maskmail.example>\n", RelayPrivate, "unknown", false,
			[]string{"k3j4h5g6f7d8s9a0q1w2@maskmail.example"}, "a relay rewrote it"},
		{"ticket system Reply-To is tokenized, not private", "From: support@vendor.example\nReply-To: reply+a8f3k2m9x7q1@tickets.vendor.example\n", RelayNone, "", true,
			[]string{"reply+a8f3k2m9x7q1@tickets.vendor.example"}, "carries an opaque token"},
		{"mailing list", "From: ann@customer.example\nList-Id: <users.lists.example.org>\nList-Post: <mailto:users@lists.example.org>\n", RelayList, "", false, nil, "header List-Id"},
		{"list beats forwarded", "From: ann@customer.example\nList-Id: <users.lists.example.org>\nARC-Seal: i=1; a=rsa-sha256; cv=none\n", RelayList, "", false, nil, "List-Id"},
		{"private beats list", "From: w11tzqdr@duck.com\nList-Id: <users.lists.example.org>\n", RelayPrivate, "duckduckgo", false, []string{"w11tzqdr@duck.com"}, "duckduckgo"},
		{"SRS envelope sender", "Return-Path: <SRS0=HhA3=ZZ=customer.example=ann@forwarder.example>\nFrom: ann@customer.example\n", RelayForwarded, "", false, nil, "SRS-rewritten"},
		{"ARC chain", "ARC-Seal: i=1; a=rsa-sha256; cv=none; d=forwarder.example\nFrom: ann@customer.example\n", RelayForwarded, "", false, nil, "ARC-Seal d=forwarder.example is neither the sender's nor the receiver's system"},
		{"Microsoft 365 seals the ARC set of its own sender's mail", "Received: from eur04.outbound.protection.outlook.com (mail-eopbgr80125.outbound.protection.outlook.com [40.107.8.125]) by mx1.helpdesk.example (Postfix) with ESMTPS id D1; Mon, 2 Nov 2026 09:00:00 +0000\nARC-Seal: i=1; a=rsa-sha256; s=arcselector9901; d=microsoft.com; cv=none; b=x\nReceived: from AM7PR09MB3574.eurprd09.prod.outlook.com ([fe80::1]) by AM7PR09MB3574.eurprd09.prod.outlook.com ([fe80::1%5]) with mapi id 15.20.2878.022; Mon, 2 Nov 2026 08:59:00 +0000\nFrom: ann@customer.example\n", RelayNone, "", false, nil,
			"ARC-Seal d=microsoft.com is the sender's (submission to am7pr09mb3574.eurprd09.prod.outlook.com) own system: not forwarding"},
		{"Gmail seals the ARC set of mail it receives", "Received: by 2002:a05:7300:538f:b0:7c:ab41:dfcf with SMTP id g15csp950363dye; Mon, 2 Nov 2026 09:00:00 -0800 (PST)\nARC-Seal: i=1; a=rsa-sha256; t=1675302377; cv=none; d=google.com; s=arc-20160816; b=x\nReceived: from mail.customer.example (mail.customer.example [198.51.100.7]) by mx.google.com with ESMTPS id 23; Mon, 2 Nov 2026 09:00:00 -0800 (PST)\nFrom: ann@customer.example\n", RelayNone, "", false, nil,
			"ARC-Seal d=google.com is the receiver's (by mx.google.com) own system"},
		{"a sender on Outlook.com and an ARC set by Microsoft", "ARC-Seal: i=2; a=rsa-sha256; s=arcselector9901; d=microsoft.com; cv=pass; b=x\nARC-Seal: i=1; a=rsa-sha256; s=arcselector9901; d=microsoft.com; cv=none; b=x\nFrom: ann@tenant.onmicrosoft.com\n", RelayNone, "", false, nil, "ARC-Seal d=microsoft.com is the sender's (From tenant.onmicrosoft.com) own system"},
		{"an intermediary's ARC set beside the receiver's", "Received: by 2002:a05:7300:538f with SMTP id g15; Mon, 2 Nov 2026 09:00:00 -0800 (PST)\nARC-Seal: i=2; a=rsa-sha256; cv=pass; d=google.com; s=arc-20160816; b=x\nReceived: from mail.alumni.example (mail.alumni.example [192.0.2.200]) by mx.google.com with ESMTPS id 9; Mon, 2 Nov 2026 09:00:00 -0800 (PST)\nARC-Seal: i=1; a=rsa-sha256; cv=none; d=alumni.example; s=arc; b=x\nFrom: ann@customer.example\n", RelayForwarded, "", false, nil,
			"ARC-Seal d=alumni.example is neither the sender's nor the receiver's system"},
		{"Resent-*", "Resent-From: boss@customer.example\nFrom: ann@customer.example\n", RelayForwarded, "", false, nil, "Resent-From"},
		{"X-Forwarded-To", "X-Forwarded-To: support@helpdesk.example\nFrom: ann@customer.example\n", RelayForwarded, "", false, nil, "X-Forwarded-To"},
		{"plain mail", "From: ann@customer.example\nReply-To: ann.private@home.example\n", RelayNone, "", false, nil, ""},
		{"SimpleLogin's MX stamp on mail it received is no relay", "X-SimpleLogin-Client-IP: 40.92.66.13\nFrom: <staff@hotmail.com>\n", RelayNone, "", false, nil, ""},
		{"a name with a number in Reply-To is no token", "From: Martin <info@customer.example>\nReply-To: <mrmartinkofiadu09@gmail.com>\n", RelayNone, "", false, nil, ""},
		{"a ticket number after reply+ is no token", "From: support@vendor.example\nReply-To: reply+ticket12345@tickets.vendor.example\n", RelayNone, "", false, nil, ""},
	}
	an := New(nil)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := classifyHeader(t, an, c.header+to)
			if v.Relay != c.relay || v.RelayService != c.service || v.ReplyToTokenized != c.tokenized {
				t.Errorf("relay %s/%q tokenized=%v, want %s/%q tokenized=%v; reasons:\n  %s", v.Relay, v.RelayService, v.ReplyToTokenized, c.relay, c.service, c.tokenized, strings.Join(v.Reasons, "\n  "))
			}
			if strings.Join(v.RelayAddresses, ",") != strings.Join(c.addrs, ",") {
				t.Errorf("relay addresses %q, want %q", v.RelayAddresses, c.addrs)
			}
			if c.reason != "" && !hasReason(v.Reasons, c.reason) {
				t.Errorf("no reason contains %q; reasons:\n  %s", c.reason, strings.Join(v.Reasons, "\n  "))
			}
			wantClass := ClassClean
			if c.relay == RelayPrivate {
				wantClass = ClassPrivateRelay
			}
			if v.Class != wantClass {
				t.Errorf("class %s, want %s", v.Class, wantClass)
			}
		})
	}
}

func TestRelayExtra(t *testing.T) {
	an := New([]RelayService{
		{Name: "corp-mask", Domains: []string{"*.mask.corp.example"}},
		{Name: "duckduckgo", Domains: []string{"duck.example"}},
	})
	for _, c := range []struct{ from, service string }{
		{"a@x.mask.corp.example", "corp-mask"},
		{"a@mask.corp.example", ""}, // "*." matches subdomains only
		{"abc@duck.example", "duckduckgo"},
		{"abc@duck.com", "duckduckgo"},
	} {
		v := classifyHeader(t, an, "From: "+c.from+"\n")
		if v.RelayService != c.service {
			t.Errorf("From %s: service %q, want %q", c.from, v.RelayService, c.service)
		}
	}
}

func TestThread(t *testing.T) {
	cases := []struct {
		name, header, key, subject string
		inReplyTo, references      []string
	}{
		{"root", "Message-ID: <root.1@customer.example>\nSubject: Order 42 is late\n", "root.1@customer.example", "Order 42 is late", nil, nil},
		{"reply with References", "Message-ID: <r2@helpdesk.example>\nIn-Reply-To: <r1@customer.example>\nReferences: <root.1@customer.example>\n <r1@customer.example>\nSubject: Re: RE: Order 42 is late\n",
			"root.1@customer.example", "Order 42 is late", []string{"r1@customer.example"}, []string{"root.1@customer.example", "r1@customer.example"}},
		{"reply with In-Reply-To only", "Message-ID: <r3@x>\nIn-Reply-To: <root.1@customer.example>\nSubject: AW: WG: Order\n", "root.1@customer.example", "Order", []string{"root.1@customer.example"}, nil},
		{"counted and localized prefixes", "Message-ID: <r4@x>\nSubject: RE[2]: Sv: VS: Antw: Réf. : TR: Fwd: Fw:  Order   42\n", "r4@x", "Order 42", nil, nil},
		{"Chinese reply prefix", "Message-ID: <r5@x>\nSubject: 回复: 订单\n", "r5@x", "订单", nil, nil},
		{"encoded subject", "Message-ID: <r6@x>\nSubject: =?UTF-8?Q?Re=3A_Bestellung_f=C3=BCr_M=C3=BCller?=\n", "r6@x", "Bestellung für Müller", nil, nil},
		{"no IDs", "Subject: Hello\n", "", "Hello", nil, nil},
	}
	an := New(nil)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := classifyHeader(t, an, "From: ann@customer.example\n"+c.header)
			if v.ThreadKey != c.key || v.NormalizedSubject != c.subject {
				t.Errorf("thread key %q subject %q, want %q %q", v.ThreadKey, v.NormalizedSubject, c.key, c.subject)
			}
			if strings.Join(v.InReplyTo, " ") != strings.Join(c.inReplyTo, " ") || strings.Join(v.References, " ") != strings.Join(c.references, " ") {
				t.Errorf("in-reply-to %q references %q, want %q %q", v.InReplyTo, v.References, c.inReplyTo, c.references)
			}
		})
	}
}

func TestFingerprint(t *testing.T) {
	an := New(nil)
	fp := func(h string) string { return classifyHeader(t, an, h).Fingerprint }
	base := "From: ann@customer.example\nTo: support@helpdesk.example\nDate: Mon, 2 Nov 2026 09:00:00 +0000\nSubject: Hi\n"
	withID := base + "Message-ID: <f1@customer.example>\n"
	if a, b := fp(withID), fp("Received: from a by b with LMTP; Mon, 2 Nov 2026 09:00:00 +0000\n"+withID); a != b {
		t.Errorf("a Received line changed the fingerprint of a message with Message-ID: %s vs %s", a, b)
	}
	if !strings.HasPrefix(fp(withID), "f1@customer.example/") {
		t.Errorf("fingerprint %q does not start with the Message-ID", fp(withID))
	}
	if fp(withID) == fp(strings.Replace(withID, "Subject: Hi", "Subject: Other", 1)) {
		t.Error("a different Subject gave the same fingerprint")
	}
	if a, b := fp(base+"X-Long: a\n b\n"), fp(base+"X-Long: a b\n"); a != b {
		t.Errorf("refolding changed the fingerprint without Message-ID: %s vs %s", a, b)
	}
	if fp(base+"X-A: 1\n") == fp(base+"X-A: 2\n") {
		t.Error("without Message-ID, another header field value gave the same fingerprint")
	}
}

// TestFingerprintBody checks that a message copying another's identifying
// headers gets its own fingerprint (issue 11 item 6: a collision must never
// hide a message), and that the same message read again keeps its own.
func TestFingerprintBody(t *testing.T) {
	an := New(nil)
	fp := func(raw string) string {
		m, err := FromRaw(strings.NewReader(raw))
		if err != nil {
			t.Fatalf("FromRaw: %v", err)
		}
		return an.Classify(m, DefaultPolicy()).Fingerprint
	}
	plain := msg("Content-Type: text/plain; charset=utf-8\n", "My order is late.\n")
	cases := []struct {
		name string
		a, b string
		same bool
	}{
		{"an encrypted message with the headers of a clean one", plain, msg("Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=b1\n",
			"--b1\nContent-Type: application/pgp-encrypted\n\nVersion: 1\n--b1\nContent-Type: application/octet-stream\n\n"+pgpArmor+"--b1--\n"), false},
		{"another text under the same headers", plain, msg("Content-Type: text/plain; charset=utf-8\n", "Please cancel my order.\n"), false},
		{"an S/MIME part with the same headers", plain, msg("Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\nContent-Transfer-Encoding: base64\n", b64(der(oidEnveloped))), false},
		{"a broken copy under the same headers", plain, msg("Content-Type: multipart/mixed\n", "My order is late.\n"), false},
		{"the same message with CRLF line ends", plain, strings.ReplaceAll(plain, "\n", "\r\n"), true},
		{"the same message with a Received line added on restore", plain, "Received: from backup by restore with LMTP; Mon, 2 Nov 2026 10:00:00 +0000\n" + plain, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, b := fp(c.a), fp(c.b)
			if (a == b) != c.same {
				t.Errorf("fingerprints %s and %s: same=%v, want %v", a, b, a == b, c.same)
			}
		})
	}
}

func TestPolicy(t *testing.T) {
	an := New(nil)
	m, err := FromRaw(strings.NewReader("From: w11tzqdr@duck.com\nMessage-ID: <p1@x>\n\nhi\n"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		policy Policy
		want   Action
	}{
		{"default forwards private relay mail", DefaultPolicy(), ActionForward},
		{"policy flags private relay mail", Policy{ClassPrivateRelay: ActionFlag}, ActionFlag},
		{"missing class falls back to the default", Policy{ClassEncrypted: ActionForward}, ActionForward},
		{"nil policy is the default", nil, ActionForward},
	}
	for _, c := range cases {
		if v := an.Classify(m, c.policy); v.Class != ClassPrivateRelay || v.Action != c.want {
			t.Errorf("%s: class %s action %s, want private_relay %s", c.name, v.Class, v.Action, c.want)
		}
	}
}

func TestContentTypeLenient(t *testing.T) {
	cases := []struct {
		in, mt   string
		boundary string
	}{
		{`multipart/mixed; boundary="b1"`, "multipart/mixed", "b1"},
		{`multipart/mixed; boundary="b1"; charset=`, "multipart/mixed", "b1"},
		{`Multipart/Mixed; foo=bar; foo=baz; boundary=b2`, "multipart/mixed", "b2"},
		{`text/plain; name="a b.txt`, "text/plain", ""},
	}
	for _, c := range cases {
		mt, params := contentType(c.in)
		if mt != c.mt || params["boundary"] != c.boundary {
			t.Errorf("%q: %q boundary %q, want %q %q", c.in, mt, params["boundary"], c.mt, c.boundary)
		}
	}
}

func TestTransportManyHops(t *testing.T) {
	hops := strings.Repeat("Received: from relay.isp.example (relay.isp.example [203.0.113.5]) by mx.customer.example with ESMTPS; Mon, 2 Nov 2026 08:59:00 +0000\n", 1500)
	v := classifyHeader(t, New(nil), hops+baseHeader)
	if v.TransportTLS != TransportTLSYes || len(v.Reasons) > maxHopReasons+1 || !hasReason(v.Reasons, "1488 more judged hops") {
		t.Errorf("transport %s with %d reasons, last %q", v.TransportTLS, len(v.Reasons), v.Reasons[len(v.Reasons)-1])
	}
}

func TestMboxPostmark(t *testing.T) {
	an := New(nil)
	for _, c := range []struct {
		header, from string
		problems     bool
	}{
		{"From ann@customer.example Mon Nov  2 09:00:00 2026\nFrom: ann@customer.example\n", "ann@customer.example", false},
		{"From : ann@customer.example\nSubject: obsolete syntax\n", "ann@customer.example", false},
		{"From nobody\n", "", true},
	} {
		v := classifyHeader(t, an, c.header)
		if v.From != c.from || (v.Encryption == EncryptionUnparseable) != c.problems {
			t.Errorf("%q: From %q encryption %s", c.header, v.From, v.Encryption)
		}
	}
}
