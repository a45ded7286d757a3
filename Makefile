# Portway. `make demo` runs the demo, `make test` runs every test. Both install what is missing first.
SHELL := /bin/bash
SWIFT ?= swift
BPF_CLANG ?= clang
BPF_OUT := bpf/out
BPF_SRCS := $(wildcard bpf/progs/*.c)
BPF_OBJS := $(patsubst bpf/progs/%.c,$(BPF_OUT)/%.o,$(BPF_SRCS))
APT_PACKAGES := libcurl4-openssl-dev libbpf-dev libelf-dev zlib1g-dev pkg-config clang llvm bpftool iproute2 iputils-ping netcat-openbsd python3 openssl curl etcd-server xz-utils nftables wrk iptables nginx-light

.PHONY: deps build bpf stamp bpffs test envtest e2e e2e-node image demo bench fuzz fmt clean

# The real control plane (kube-apiserver, kube-controller-manager, etcd) for the envtest and e2e
# suites: KUBEBUILDER_ASSETS when set, else ../shared/kube/assets.sh when it exists. Without
# either those suites skip (printing why); with CI=true they fail instead.
ENVTEST_ASSETS_SCRIPT := $(wildcard $(CURDIR)/../shared/kube/assets.sh)
WITH_ASSETS = if [ -z "$${KUBEBUILDER_ASSETS:-}" ] && [ -n "$(ENVTEST_ASSETS_SCRIPT)" ]; then \
	  eval "$$($(ENVTEST_ASSETS_SCRIPT))" || echo "warning: $(ENVTEST_ASSETS_SCRIPT) failed; the control-plane suites will skip"; fi; \
	  echo "KUBEBUILDER_ASSETS=$${KUBEBUILDER_ASSETS:-<unset: envtest and e2e suites skip>}";

## deps: install the Debian packages Portway needs (only what is missing; idempotent)
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

## build: the portway binary, with the version, the git commit and the BPF object stamped in
build: deps bpf stamp
	$(SWIFT) build

## stamp: what the binary embeds (version, commit, bpf/out/portway_lb.o), in Sources/CPortwayBuild/generated.
## A plain `swift build` without it builds too: version "dev", and no embedded datapath object
## (the agent then needs --bpf-object or PORTWAY_BPF_DIR).
stamp: bpf
	@./scripts/stamp-build.sh

## bpf: compile bpf/progs/*.c for the BPF target
bpf: deps $(BPF_OBJS)

$(BPF_OUT)/%.o: bpf/progs/%.c bpf/include/*.h $(wildcard bpf/progs/*.h)
	@mkdir -p $(BPF_OUT)
	$(BPF_CLANG) -O2 -g -Wall -Werror -target bpf -D__TARGET_ARCH_x86 -I bpf/include -I /usr/include/$$(uname -m)-linux-gnu -c $< -o $@

## image: the release binary (static Swift runtime, BPF object embedded) on a minimal Debian bookworm,
## written as a docker-archive tarball (no registry, no daemon; root and ../shared/kube/node needed;
## elsewhere: deploy/Containerfile). IMAGE overrides the reference.
VERSION := $(shell tr -d ' \n' < VERSION)
IMAGE ?= localhost/portway:$(VERSION)
IMAGE_TAR := .build/portway-image.tar
image: deps bpf stamp
	$(SWIFT) build -c release --static-swift-stdlib --product portway
	./scripts/build-image.sh .build/release/portway $(IMAGE_TAR) $(IMAGE)

## e2e-node: Portway as a user runs it, on a real kubelet node (../shared/kube/node, kube-proxy off):
## the image loaded, manifests/ applied, traffic, upgrades, uninstall (scripts/e2e-node.sh; root).
## `make test` runs it too when root and ../shared/kube/node exist.
e2e-node: image
	./scripts/e2e-node.sh $(CURDIR)/$(IMAGE_TAR) $(IMAGE)

## bpffs: mount the BPF file system at /sys/fs/bpf when running as root and it is not mounted
## (a freshly booted machine may not have it; the maps are pinned there)
bpffs:
	@if [ "$$(id -u)" = 0 ] && [ "$$(stat -f -c %T /sys/fs/bpf 2>/dev/null)" != "bpf_fs" ]; then \
	  mkdir -p /sys/fs/bpf && mount -t bpf bpf /sys/fs/bpf && echo "mounted bpffs at /sys/fs/bpf"; fi

## test: every test (unit, API server, real control plane, maps, datapath and e2e; see docs/TESTING.md).
## The root-only ones skip with a reason otherwise; so do the control-plane ones without KUBEBUILDER_ASSETS.
## The real-node suite (NodeE2ETests) runs last and alone, with the image built for it, when root and
## ../shared/kube/node exist; otherwise it says why it is skipped.
NODE_UP := $(wildcard $(CURDIR)/../shared/kube/node/up.sh)
test: deps bpf stamp bpffs
	$(SWIFT) build --build-tests
	@$(WITH_ASSETS) set -x; PORTWAY_BPF_DIR=$(CURDIR)/$(BPF_OUT) $(SWIFT) test --skip-build --skip NodeE2ETests
	@if [ "$$(id -u)" = 0 ] && [ -n "$(NODE_UP)" ]; then \
	  $(MAKE) --no-print-directory image && \
	  PORTWAY_NODE_IMAGE_TAR=$(CURDIR)/$(IMAGE_TAR) PORTWAY_NODE_IMAGE=$(IMAGE) $(SWIFT) test --skip-build --filter NodeE2ETests; \
	else echo "NodeE2ETests skipped: needs root and ../shared/kube/node (make e2e-node)"; fi

## envtest: only the suites against a real kube-apiserver + etcd
envtest: deps
	$(SWIFT) build --build-tests
	@$(WITH_ASSETS) set -x; $(SWIFT) test --skip-build --filter 'KubeAPITests.(Envtest|Parity|GatewayLeaderEnvtest|ClusterListEnvtest)'

## e2e: only the local-cluster scenarios (real control plane, node namespaces, `portway agent` per node; root)
e2e: deps bpf stamp bpffs
	$(SWIFT) build --build-tests
	@$(WITH_ASSETS) set -x; PORTWAY_BPF_DIR=$(CURDIR)/$(BPF_OUT) $(SWIFT) test --skip-build --filter E2ETests

## demo: real packets through the NodePort datapath in network namespaces (root)
demo: build bpffs
	./scripts/demo.sh

## bench: benchmarks, reported as ratios measured side by side
bench: build
	./scripts/bench.sh

## fuzz: each libFuzzer target for FUZZ_SECONDS (default 60) seconds; `make test` replays the corpus
FUZZ_SECONDS ?= 60
fuzz: deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) SWIFT=$(SWIFT) ./scripts/fuzz.sh

fmt:
	@if $(SWIFT) format --version >/dev/null 2>&1; then $(SWIFT) format --in-place --recursive Sources Tests Package.swift; else echo "swift format not available"; fi

clean:
	rm -rf .build .build-fuzz $(BPF_OUT) Sources/CPortwayBuild/generated
