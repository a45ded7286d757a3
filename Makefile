# Portway. `make demo` runs the demo, `make test` runs every test. Both install what is missing first.
SHELL := /bin/bash
SWIFT ?= swift
BPF_CLANG ?= clang
BPF_OUT := bpf/out
BPF_SRCS := $(wildcard bpf/progs/*.c)
BPF_OBJS := $(patsubst bpf/progs/%.c,$(BPF_OUT)/%.o,$(BPF_SRCS))
APT_PACKAGES := libcurl4-openssl-dev libbpf-dev libelf-dev zlib1g-dev pkg-config clang llvm bpftool iproute2 iputils-ping netcat-openbsd python3 openssl curl nftables wrk iptables nginx-light

.PHONY: deps build bpf test demo bench fmt clean

## deps: install the Debian packages Portway needs (only what is missing; idempotent)
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

## build: the portway binary and the BPF objects
build: deps bpf
	$(SWIFT) build

## bpf: compile bpf/progs/*.c for the BPF target
bpf: deps $(BPF_OBJS)

$(BPF_OUT)/%.o: bpf/progs/%.c bpf/include/*.h $(wildcard bpf/progs/*.h)
	@mkdir -p $(BPF_OUT)
	$(BPF_CLANG) -O2 -g -Wall -Werror -target bpf -D__TARGET_ARCH_x86 -I bpf/include -I /usr/include/$$(uname -m)-linux-gnu -c $< -o $@

## test: every test (unit, API server, maps and datapath; the root-only ones skip with a reason otherwise)
test: deps bpf
	$(SWIFT) build --build-tests
	PORTWAY_BPF_DIR=$(CURDIR)/$(BPF_OUT) $(SWIFT) test --skip-build

## demo: real packets through the NodePort datapath in network namespaces (root)
demo: build
	./scripts/demo.sh

## bench: benchmarks, reported as ratios measured side by side
bench: build
	./scripts/bench.sh

fmt:
	@if $(SWIFT) format --version >/dev/null 2>&1; then $(SWIFT) format --in-place --recursive Sources Tests Package.swift; else echo "swift format not available"; fi

clean:
	rm -rf .build $(BPF_OUT)
