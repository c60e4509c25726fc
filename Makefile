# Berth's build. `make help` lists the targets.
#
# Two commands matter on a fresh machine:
#   make run    macOS: build Berth.app and open it. Linux: build, fetch a
#               guest kernel, start the engine (daemon) and show its status.
#   make test   everything CI proves: vet, gofmt, the darwin type-check and
#               the Go test suite (real registry, real QEMU micro-VMs).

GO        ?= go
GOOS      := $(shell $(GO) env GOOS)
GOARCH    := $(shell $(GO) env GOARCH)
BIN       := bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.1.0-dev)
LDFLAGS   := -X github.com/berthvm/berth/engine/version.Version=$(VERSION)
# Where `make kernel` unpacks Debian's kernel packages (one dir per arch).
KERNEL_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/berth/kernel
GUEST_ARCHES := amd64 arm64
BENCHTIME ?= 5x

.PHONY: screenshots help build guest builder-bins run test compose vet fmt-check darwin-check darwin-build app app-layout icons workflow-lint bench kernel kernel-berth generate clean deps web

help:
	@echo "make run       start Berth (macOS: the app; Linux: the engine + status)"
	@echo "make test      vet, gofmt, darwin type-check and CLI-only link, go test ./..."
	@echo "make build     bin/berth for this machine (after make web)"
	@echo "make web       the web pages' bundle berth embeds (assets/web; needs Node.js 20+)"
	@echo "make screenshots docs/berth-window{,-dark}.png from the Berth window e2e test (chromium, QEMU), docs/menu{,-dark}.png"
	@echo "make compose   docker compose (pinned, tools/build-compose.sh) as the docker CLI plugin"
	@echo "make guest     static guestinit for linux/amd64 and linux/arm64"
	@echo "make builder-bins  the image builder guest's static buildkitd, buildctl, runc (builder/bin/ARCH)"
	@echo "make deps      install the Debian packages make run needs (Linux)"
	@echo "make kernel    fetch Debian's guest kernel for this arch (Linux)"
	@echo "make kernel-berth  build Berth's own guest kernel from Debian's linux-source (Linux, slow; docs/kernel.md)"
	@echo "make app       Berth.app, signed with entitlements.plist (macOS only; UNIVERSAL=1: arm64+amd64)"
	@echo "make app-layout  Berth.app's directories, Info.plist and Resources, any OS (APP_DIR=...)"
	@echo "make icons     the app icon and menu bar icons into build/icons (ICON_DIR=...), preview in docs/"
	@echo "make bench     benchmarks recorded in docs/BENCHMARKS.md"
	@echo "make generate  regenerate the agent protocol's Go code"

# The web pages' bundle (assets/web/dist, embedded by assets/web/web.go):
# npm ci when node_modules is missing or older than the lockfile, then the
# type check and esbuild. A berth built without it still compiles and says
# to run this.
WEB := assets/web
WEB_SRC := $(wildcard $(WEB)/src/* $(WEB)/src/window/*) $(WEB)/build.mjs $(WEB)/tsconfig.json

web: $(WEB)/dist/index.html

$(WEB)/node_modules/.package-lock.json: $(WEB)/package-lock.json $(WEB)/package.json
	@command -v node >/dev/null && command -v npm >/dev/null || { \
	  echo "make web: Node.js 20 or later and npm are needed to build the web pages; install them (macOS: brew install node; Debian: apt-get install nodejs npm, or NodeSource's nodejs 20 where Debian's is older), then run make again" >&2; exit 1; }
	@v=$$(node -p 'process.versions.node.split(".")[0]'); [ "$$v" -ge 20 ] || { \
	  echo "make web: Node.js $$(node --version) is too old; install Node.js 20 or later (macOS: brew install node; Debian bookworm: NodeSource's nodejs 20)" >&2; exit 1; }
	cd $(WEB) && npm ci --no-audit --no-fund
	@touch $@

$(WEB)/dist/index.html: $(WEB)/node_modules/.package-lock.json $(WEB_SRC)
	cd $(WEB) && npx --no-install tsc --noEmit -p .
	cd $(WEB) && node build.mjs

# docs/berth-window.png: app's TestWindow (chromium, one QEMU VM at a
# time) screenshots the Berth window; light and dark are committed.
# bin/berth and, next to it where the engine looks, the guest's PID 1.
# On macOS bin/berth is signed ad hoc with entitlements.plist, as Lima
# signs limactl: Virtualization.framework refuses to start VMs for a
# process without the com.apple.security.virtualization entitlement.
build: web
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/berth ./app
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/berth-top ./app/plugins/berth-top
ifeq ($(GOOS),darwin)
	codesign --force --entitlements entitlements.plist -s - $(BIN)/berth
endif
	CGO_ENABLED=0 GOOS=linux GOARCH=$(GOARCH) $(GO) build -trimpath -ldflags '$(GUEST_LDFLAGS)' \
	  -o $(BIN)/guestinit-linux-$(GOARCH) ./guestinit

GUEST_LDFLAGS := -s -w -X main.version=$(VERSION)

# The image builder guest's programs (issue 26): BuildKit's buildkitd and
# buildctl and a static runc with seccomp, at the versions builder/go.mod
# and builder/runc/go.mod pin, into builder/bin/ARCH (ignored by git). For
# this machine's arch and, when its cross toolchain is installed (deps.sh
# test installs it), the other of amd64/arm64; BUILDER_ARCHES="amd64 arm64"
# asks for both and fails naming what is missing. Up-to-date arches are
# not rebuilt. Linux only: runc links libseccomp with cgo.
BUILDER_ARCHES ?=
builder-bins:
	GO=$(GO) bash builder/build.sh $(BUILDER_ARCHES)

guest:
	@for a in $(GUEST_ARCHES); do \
	  echo "guestinit linux/$$a"; \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$$a $(GO) build -trimpath -ldflags '$(GUEST_LDFLAGS)' \
	    -o $(BIN)/guestinit-linux-$$a ./guestinit || exit 1; \
	done
	@file $(BIN)/guestinit-linux-* 2>/dev/null || true

# Debian packages `make run` needs (qemu, busybox-static, ...); sudo when
# not root.
deps:
ifeq ($(GOOS),linux)
	bash assets/linux/deps.sh run
endif

kernel:
ifeq ($(GOOS),linux)
	bash assets/kernel/fetch-debian-kernel.sh $(GOARCH) $(KERNEL_CACHE)
else
	@echo "make kernel: on macOS Berth downloads its pinned kernel on first start"
endif

# Berth's own guest kernel (docs/kernel.md): Debian's linux-source-6.1,
# defconfig + assets/linux/berth-kernel.config, everything built in, no
# modules, into $(KERNEL_CACHE)/berth-ARCH. An option, not the default:
# BERTH_KERNEL=$(KERNEL_CACHE)/berth-ARCH boots it. Slow (tens of minutes,
# niced, JOBS=2); never part of make test or CI. KERNEL_ARCH=arm64 on an
# amd64 host cross-compiles.
KERNEL_ARCH ?= $(GOARCH)
kernel-berth:
ifeq ($(GOOS),linux)
	bash assets/linux/build-berth-kernel.sh $(KERNEL_ARCH) $(KERNEL_CACHE)
else
	@echo "make kernel-berth: builds on Linux only (Debian's linux-source); use a Linux machine or VM and copy $(KERNEL_CACHE)/berth-ARCH" >&2; exit 1
endif

# macOS: the app. Linux: the engine in the background, the demo image
# (Debian's busybox-static, no network needed) and a shell in its own
# micro-VM.
run: build
ifeq ($(GOOS),darwin)
	$(MAKE) app
	open '$(APP_DIR)'
else
	$(MAKE) deps kernel
	@if $(BIN)/berth system status >/dev/null 2>&1; then \
	  echo "Berth is already running"; \
	else \
	  mkdir -p $${BERTH_HOME:-$$HOME/.berth}; \
	  setsid nohup $(BIN)/berth daemon >/dev/null 2>&1 < /dev/null & \
	  for i in $$(seq 50); do $(BIN)/berth system status >/dev/null 2>&1 && break; sleep 0.1; done; \
	fi
	$(BIN)/berth system status
	$(GO) run ./app/demoimage -o $(BIN)/demo.tar
	$(BIN)/berth image load -i $(BIN)/demo.tar
	@echo
	@echo "The engine runs in the background (log: $${BERTH_HOME:-~/.berth}/daemon.log)."
	@echo "Docker CLI: DOCKER_HOST=unix://$${BERTH_HOME:-$$HOME/.berth}/berth.sock docker ps"
	@echo "Stop it with: pkill -f '$(BIN)/berth daemon'"
	@$(BIN)/berth inspect demo >/dev/null 2>&1 || $(BIN)/berth run -d --name demo demo sh -c 'while true; do date; sleep 5; done'
	@$(BIN)/berth start demo >/dev/null
	@echo "A demo container runs in its own micro-VM: '$(BIN)/berth shell demo' opens a shell in it."
	@echo "The Berth window (open the URL in a browser; Ctrl-C here closes it):"
	$(BIN)/berth ui
endif

# Berth.app. APP_DIR chooses where (it must end in .app: web app-layout
# replaces it). The bundle version is VERSION's leading MAJOR.MINOR.PATCH
# (git tag v1.2.3, v1.2.3-4-gHASH), else 0.1.0: macOS wants integers
# there.
APP_DIR        ?= Berth.app
BUNDLE_VERSION := $(or $(shell echo '$(VERSION)' | sed -nE 's/^v?([0-9]+\.[0-9]+\.[0-9]+)([-+].*)?$$/\1/p'),0.1.0)
# The guest architectures the bundle carries guestinit for: the Mac's own
# (an Apple silicon Mac boots arm64 guests, an Intel Mac amd64 ones), or
# both with UNIVERSAL=1.
APP_ARCHES     := $(if $(UNIVERSAL),arm64 amd64,$(GOARCH))

# The icons, drawn by app/appicon (no binary committed): AppIcon.icns and
# the menu bar's template icons (berthTemplate.png, @2x, and the starting
# and error variants) into ICON_DIR, and the preview docs/macos.md shows
# (docs/menubar-icons.png).
ICON_DIR ?= build/icons
icons:
	mkdir -p '$(ICON_DIR)'
	$(GO) run ./app/appicon -o '$(ICON_DIR)/AppIcon.icns' -menubar '$(ICON_DIR)' -preview docs/menubar-icons.png

# Everything in Berth.app but the main binary and the signature, on any
# OS: Info.plist with the version filled in, PkgInfo, the icon, and
# guestinit for each guest architecture in Resources. app/bundle_test.go
# checks the result against what macOS requires of a bundle.
app-layout:
	@case '$(APP_DIR)' in *.app) ;; *) echo "make app-layout: APP_DIR=$(APP_DIR) must name a .app directory (it is replaced)" >&2; exit 1;; esac
	rm -rf '$(APP_DIR)'
	mkdir -p '$(APP_DIR)/Contents/MacOS' '$(APP_DIR)/Contents/Resources'
	sed 's/@BUNDLE_VERSION@/$(BUNDLE_VERSION)/g' Info.plist > '$(APP_DIR)/Contents/Info.plist'
	printf 'APPL????' > '$(APP_DIR)/Contents/PkgInfo'
	$(GO) run ./app/appicon -o '$(APP_DIR)/Contents/Resources/AppIcon.icns' -menubar '$(APP_DIR)/Contents/Resources'
	@for a in $(APP_ARCHES); do \
	  echo "guestinit linux/$$a -> $(APP_DIR)/Contents/Resources"; \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$$a $(GO) build -trimpath -ldflags '$(GUEST_LDFLAGS)' \
	    -o '$(APP_DIR)/Contents/Resources/guestinit-linux-'$$a ./guestinit || exit 1; \
	done

# The whole app: app-layout, the main binary (cgo: Virtualization.framework
# and AppKit; with UNIVERSAL=1 one per Mac architecture, joined by lipo),
# then one ad hoc signature of the bundle with entitlements.plist. Signing
# the bundle signs its main executable with these entitlements; signing
# the binary with them and then the bundle without would drop them. The
# last step prints the entitlements the signature carries.
app: web app-layout
ifeq ($(GOOS),darwin)
	@for a in $(APP_ARCHES); do \
	  echo "berth darwin/$$a (cgo)"; \
	  CGO_ENABLED=1 GOOS=darwin GOARCH=$$a $(GO) build -trimpath -ldflags '$(LDFLAGS)' \
	    -o '$(APP_DIR)/Contents/MacOS/berth-'$$a ./app || exit 1; \
	done
	lipo -create $(foreach a,$(APP_ARCHES),'$(APP_DIR)/Contents/MacOS/berth-$(a)') -output '$(APP_DIR)/Contents/MacOS/berth'
	rm -f $(foreach a,$(APP_ARCHES),'$(APP_DIR)/Contents/MacOS/berth-$(a)')
	codesign --force --entitlements entitlements.plist -s - '$(APP_DIR)'
	codesign --verify --strict '$(APP_DIR)'
	codesign --display --entitlements - '$(APP_DIR)'
else
	@echo "make app: the berth binary in Berth.app needs macOS (cgo with the macOS SDK for Virtualization.framework and AppKit, and codesign); this is $(GOOS). '$(APP_DIR)' holds the rest of the bundle (make app-layout); 'make darwin-check darwin-build' type-check and link the darwin code instead." >&2
	@exit 1
endif

# Docker Compose, the version tools/build-compose.sh pins, built from the
# Go module proxy (outside Berth's go.mod) and installed as the docker CLI
# plugin ~/.docker/cli-plugins/docker-compose; cached, so a second run is
# instant (docs/compose.md).
compose:
	GO=$(GO) bash tools/build-compose.sh

# The GitHub workflows, linted by actionlint at the version tools/go.mod
# pins (a module of its own, so the engine's go.mod stays free of it; it
# builds offline once `cd tools && go mod download` has run). Its
# shellcheck and pyflakes passes are off, so the result does not depend
# on what else this machine has installed.
workflow-lint:
	cd tools && $(GO) tool actionlint -no-color -shellcheck= -pyflakes= ../.github/workflows/*.yml

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(find . -name '*.go' -not -path './node_modules/*' -not -path './.git/*' | xargs gofmt -l); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

darwin-check:
	$(GO) run ./app/darwincheck ./app/... ./engine/... ./internal/...

# A real compile and link for macOS of everything but the cgo glue (vz,
# darwinkit): the CLI-only berth a plain CGO_ENABLED=0 build makes.
darwin-build:
	@for a in arm64 amd64; do \
	  echo "darwin/$$a CGO_ENABLED=0 ./app (CLI only)"; \
	  GOOS=darwin GOARCH=$$a CGO_ENABLED=0 $(GO) build -trimpath -o /dev/null ./app || exit 1; \
	done

# The race detector runs on every package, the VM ones included: QEMU is
# its own process, so -race slows only the engine's side of a boot, and
# the whole suite stays well inside CI's budget on 2 cores (docs/
# BENCHMARKS.md, "Test suite"). Then the fuzz targets, bounded by counts of
# executions, not durations: Go 1.26's fuzz coordinator can fail a target
# with a bare "context deadline exceeded" when -fuzztime's deadline races a
# worker (go.dev/issue/75804, fixed in Go 1.27); counts have no deadline.
test: web vet fmt-check darwin-check darwin-build workflow-lint
	BERTH_TEMPLATE_DIR=$${BERTH_TEMPLATE_DIR:-$$HOME/.cache/berth/test-templates} $(GO) test -race -count=1 -timeout 50m ./...
	$(GO) test ./engine/rootfs -run '^$$' -fuzz '^FuzzApply$$' -fuzztime 30000x -fuzzminimizetime 200x
	$(GO) test ./engine/api -run '^$$' -fuzz '^FuzzRequest$$' -fuzztime 40000x -fuzzminimizetime 1000x
	$(GO) test ./engine/share/ninep -run '^$$' -fuzz '^FuzzWalkNames$$' -fuzztime 150000x -fuzzminimizetime 1000x

# The terminal window's screenshots in docs/ (README.md shows one), from a
# real run: the page in chromium on a shell in a QEMU micro-VM.
.PHONY: screenshots
# The README's pictures, from real runs: docs/terminal-light.png and
# docs/terminal-dark.png (the terminal page), docs/berth-window.png and
# docs/berth-window-dark.png (the Berth window), docs/menu.png and
# docs/menu-dark.png (app/menu's HTML rendering of the menu-bar menu,
# testdata/menu.html, in chromium; no VM).
screenshots: web
	BERTH_SCREENSHOTS=docs $(GO) test -count=1 -run '^TestTerminal$$/^browser$$' -timeout 15m ./app
	@d=$$(mktemp -d) && BERTH_SCREENSHOTS=$$d $(GO) test -count=1 -run 'TestWindow$$' ./app/ && cp $$d/berth-window.png $$d/berth-window-dark.png docs/ && rm -rf $$d
	$(GO) test -count=1 -run '^TestRenderHTML$$' ./app/menu
	cd $(WEB) && node test/menu-shot.mjs ../../app/menu/testdata/menu.html ../../docs/menu.png ../../docs/menu-dark.png

# Benchmarks recorded in docs/BENCHMARKS.md (BenchmarkTerminal, one VM for
# its sub-benchmarks, needs make web and chromium; BenchmarkIdleCPU, three
# 60 s quiet phases, likewise). BenchmarkEngineRSS (10
# container starts per op) runs once, on its own line; BenchmarkShares (one
# VM, 1 GiB each way and 10k-file trees on three places) three times on its
# own, BenchmarkNetwork (two VMs per mode, 1 GB and 1000 connections on
# three paths in user mode and four in bridge mode, which needs root and
# runs in a network namespace of its own) likewise. The rootfs ones need a
# Debian rootfs tarball: engine/rootfs/testdata/make-bench-rootfs.sh (root,
# debootstrap) writes it to ~/.cache/berth/bench once.
bench:
	$(GO) test -run '^$$' -bench '^Benchmark([^ENS]|S[^h]|N[^e])' -benchtime $(BENCHTIME) -timeout 60m $$($(GO) list ./... | grep -v -e engine/rootfs -e '/app$$')
	$(GO) test ./app -run '^$$' -bench '^BenchmarkTerminal$$' -benchtime 3x -timeout 30m
	$(GO) test ./app -run '^$$' -bench '^BenchmarkIdleCPU$$' -benchtime 1x -count 3 -timeout 30m
	$(GO) test ./app -run '^$$' -bench '^BenchmarkComposeUp$$' -benchtime 1x -timeout 30m
	$(GO) test ./engine -run '^$$' -bench '^BenchmarkEngineRSS$$' -benchtime 1x -timeout 20m
	$(GO) test ./engine -run '^$$' -bench '^BenchmarkEngineFastStart$$' -benchtime 7x -timeout 30m
	$(GO) test ./engine -run '^$$' -bench '^BenchmarkShares$$' -benchtime 1x -count 3 -timeout 120m
	$(GO) test ./engine -run '^$$' -bench '^BenchmarkNetwork$$' -benchtime 1x -count 3 -timeout 120m
	$(GO) test ./engine/rootfs -run '^$$' -bench 'Berth|Baseline|Flat' -benchtime 3x -count 5 -timeout 40m
	$(GO) test ./engine/rootfs -run '^$$' -bench SideBySide -benchtime 2x -count 5 -timeout 30m

# The agent protocol's Go code (committed); needs protoc (Debian:
# protobuf-compiler) and the two generators, installed at pinned versions.
generate:
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	$(GO) install github.com/containerd/ttrpc/cmd/protoc-gen-go-ttrpc@v1.2.10
	cd engine/agent/agentpb && PATH="$$($(GO) env GOPATH)/bin:$$PATH" $(GO) generate .

clean:
	rm -rf $(BIN) Berth.app build builder/bin
	find $(WEB)/dist -mindepth 1 ! -name README.txt -delete
