# mailtriage — build, test, fuzz, bench, lint.
# `make test` is the test command: it installs what the tests need first
# (scripts/deps.sh, as root on Debian; otherwise it prints the command).

GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
FUZZTIME  ?= 60s
BENCHTIME ?= 1s
BENCH_N   ?= 10000
BENCH_MAILBOXES ?= 500
BENCH_ROUNDS ?= 3
BENCH_STATE_N ?= 1000000
BENCH_LATENCY_N ?= 1000
BENCH_ROUTE_N ?= 1000
BENCH_BIG_N ?= 8
BENCH_BIG_SMALL ?= 200
STATICCHECK ?= $(shell $(GO) env GOPATH)/bin/staticcheck

.PHONY: build deps test fuzz bench bench-micro bench-dovecot bench-latency bench-routes bench-big bench-growth bench-state lint corpus

# The same build line as the Dockerfile's build stage.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/mailtriage ./cmd/mailtriage

# The system packages the tests need (Dovecot, Redis, openssl, gpg, ...).
deps:
	./scripts/deps.sh

# Unit, contract, integration (Redis, Redis Cluster, in-process IMAP/SMTP)
# and Dovecot end-to-end suites, with the race detector.
test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 25m ./...

# Every fuzz target in the tree, FUZZTIME each (CI runs them briefly).
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

# Micro-benchmarks, then the throughput benchmarks against a private Dovecot:
# one mailbox of BENCH_N messages (full cycle, bare read-and-relay loop, idle
# second cycle; BENCH_ROUNDS rounds, medians reported), and BENCH_MAILBOXES
# mailboxes of 20 over 3 processes and one Redis; then BENCH_LATENCY_N
# messages with the SMTP sink 0, 20 and 50 ms away behind a delay proxy;
# then BENCH_ROUTE_N messages of the mix on each route (smtp, imap, mx);
# then BENCH_BIG_N messages of 25 MB among BENCH_BIG_SMALL (peak RSS).
# Figures, not pass/fail: see bench/README.md.
bench: bench-micro bench-dovecot bench-latency bench-routes bench-big

bench-micro:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./analyzer/ ./forwarder/ ./forwarder/mx/ ./store/ ./scan/ ./poller/

bench-dovecot:
	$(GO) test -run '^$$' -bench 'Cycle|Mailboxes' -benchtime 1x -timeout 60m ./bench/ -args -bench.n=$(BENCH_N) -bench.rounds=$(BENCH_ROUNDS) -bench.mailboxes=$(BENCH_MAILBOXES)

bench-latency:
	$(GO) test -run '^$$' -bench 'Latency' -benchtime 1x -timeout 90m ./bench/ -args -bench.latency-n=$(BENCH_LATENCY_N) -bench.rounds=$(BENCH_ROUNDS)

bench-routes:
	$(GO) test -run '^$$' -bench 'Routes' -benchtime 1x -timeout 30m ./bench/ -args -bench.route-n=$(BENCH_ROUTE_N)

bench-big:
	$(GO) test -run '^$$' -bench 'BigMessages' -benchtime 1x -timeout 30m ./bench/ -args -bench.big-n=$(BENCH_BIG_N) -bench.big-small=$(BENCH_BIG_SMALL)

# Time and memory of one cycle as the mailbox grows.
bench-growth:
	$(GO) test -run '^$$' -bench 'Cycle' -benchtime 1x -timeout 60m ./bench/ -args -bench.n=1000,10000,50000

# The size of the state of BENCH_STATE_N messages: the bbolt file, Redis memory.
bench-state:
	$(GO) test -run '^$$' -bench 'StateSize' -benchtime 1x -timeout 60m ./bench/ -args -bench.state-n=$(BENCH_STATE_N)

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt: files above need formatting'; exit 1; }
	$(GO) vet ./...
	test -x $(STATICCHECK) || $(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2
	$(STATICCHECK) ./...

# Regenerate the test corpus with openssl and gpg (throw-away keys).
corpus:
	./scripts/gencorpus.sh testdata/corpus
