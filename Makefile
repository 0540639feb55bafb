# pop3conformance: the two commands a newcomer needs are
#   make conformance   the suite against the bundled reference server, reports written
#   make test          every test: unit, server, suite in all profiles, discrimination

GO      ?= go
GINKGO  ?= $(GO) run github.com/onsi/ginkgo/v2/ginkgo
PROFILE ?= exchange2010
REPORTS ?= reports/latest
FUZZTIME ?= 30s

.PHONY: all build test unit suite dovecot conformance fuzz soak bench bench-micro lint clean

all: build

build:
	mkdir -p bin
	$(GO) build -o bin/reference-server ./reference-server
	$(GO) build -o bin/pop3probe ./probe/cmd/pop3probe

## test: unit tests, server tests, real clients, the suite under each
## bundled profile, the discrimination test that proves the specs fail on a
## deviating server, and the suite against a private Dovecot.
test: lint unit suite dovecot

unit:
	$(GO) test -race -count=1 ./...

suite:
	for p in exchange2010 exchange2007 rfc1939; do \
		POP3_PROFILE=$$p $(GINKGO) -race -p --label-filter='!slow' --output-dir=reports/test-$$p --json-report=report.json ./suites/conformance || exit 1; \
	done

## dovecot: the suite against Debian's Dovecot, judged by
## fixtures/profiles/dovecot.yaml and expected-deviations.yaml.
dovecot:
	@if command -v dovecot >/dev/null 2>&1 || [ -n "$$CI" ]; then \
		probe/peers/dovecot/run-suite.sh; \
	else \
		echo "dovecot: not installed, skipped (apt-get install dovecot-core dovecot-pop3d, or run .ci/run as root)"; \
	fi

## conformance: the suite against the bundled reference server ($(PROFILE)),
## with the conformance report in $(REPORTS); --compare-profiles also runs
## the specs under every other bundled profile, in parallel, and scores them.
conformance: build
	./bin/pop3probe --profile $(PROFILE) --compare-profiles --out $(REPORTS) --format json,yaml,md,html,junit

## soak: the crash loop longer than in make test (SIGKILL during DELE/QUIT
## and deliveries, then the maildrop is checked), SOAK_ROUNDS times.
SOAK_ROUNDS ?= 1000
soak:
	CRASH_ROUNDS=$(SOAK_ROUNDS) $(GO) test -count=1 -run 'Crash' -timeout 30m -v ./reference-server

## fuzz: each fuzz target for FUZZTIME (the seed corpora also run in make test).
FUZZ_TARGETS ?= FuzzCommandReader FuzzSession FuzzStuffer FuzzSASLPlain
fuzz:
	for f in $(FUZZ_TARGETS); do \
		$(GO) test -run='^$$' -fuzz="^$$f\$$" -fuzztime=$(FUZZTIME) ./reference-server/server || exit 1; \
	done

## bench: the reference server and Dovecot side by side (reports/bench/);
## QUICK=1 runs one short round.
bench:
	QUICK=$(QUICK) probe/bench/run.sh

bench-micro:
	$(GO) test -run='^$$' -bench=. -benchmem ./reference-server/...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin reports/latest reports/test-*
