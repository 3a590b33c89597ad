# Thin wrapper: every target installs what is missing (Debian packages), configures, builds.
BUILD      ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=

.PHONY: all deps configure build test demo asan sanitize fuzz bench compare deb format clean vm-test seaweedfs-test

all: build

deps:
	@scripts/install-deps.sh

configure: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS) >/dev/null
	@echo "configured $(BUILD) ($(BUILD_TYPE))"

build: configure
	cmake --build $(BUILD) -j$(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure --timeout 900 -j$(JOBS)

# The verbs data path on real kernel RDMA stacks: Soft-RoCE in a qemu VM, kernels 6.1 and 6.12
# (tests/vm/vm-test.sh; the guest image is built once and cached in /var/cache/swrdma/vm).
vm-test: configure
	@scripts/install-vm-deps.sh
	cmake --build $(BUILD) -j$(JOBS) --target swrdma-verbs-vmtest verbs_test swrdma-agent swrdma swrdma-verbs-attack
	tests/vm/vm-test.sh $(BUILD)

demo: build
	scripts/demo.sh $(BUILD)

# AddressSanitizer + UndefinedBehaviorSanitizer build and test run.
asan:
	$(MAKE) test BUILD=build-asan BUILD_TYPE=Debug CMAKE_ARGS=-DSWRDMA_SANITIZE=ON

# CI's sanitizer run (scripts/sanitize.sh): ASan + UBSan with clang-19 in the fuzz tree
# (build-fuzz), unit, in-process and e2e tests, then the verbs code in the Soft-RoCE VM (kernel
# 6.1, about 1 min; SANITIZE_VM=0 skips it); CTEST_ARGS narrows it to host tests (-R checked_read).
sanitize: deps
	scripts/sanitize.sh $(CTEST_ARGS)

# libFuzzer targets (fuzz/), built with clang-19 in build-fuzz; each runs FUZZ_SECONDS.
FUZZ_SECONDS ?= 10
fuzz: deps
	scripts/fuzz.sh $(FUZZ_SECONDS)

# Against the real SeaweedFS (tests/seaweedfs/): weed built from the Go module proxy by
# scripts/build-weed.sh into /var/cache/swrdma (minutes the first time, cached after).
seaweedfs-test: build
	cd $(BUILD) && ctest --output-on-failure -L seaweedfs

bench: build
	scripts/bench-index.sh $(BUILD)

# Read path vs the bare UCX ceiling and memcpy: $(BUILD)/compare/compare.md and compare.png.
compare: build
	bench/compare.sh $(BUILD)

# Debian package (packaging/CMakeLists.txt): $(BUILD)/swrdma_<version>_<arch>.deb
deb: build
	cd $(BUILD) && cpack -G DEB

# clang-format-19 is what scripts/install-deps.sh installs; a plain clang-format when present.
CLANG_FORMAT ?= $(shell command -v clang-format || command -v clang-format-19 || echo clang-format-19)
format:
	git ls-files '*.h' '*.cc' | xargs $(CLANG_FORMAT) -i

clean:
	rm -rf $(BUILD) build-asan demo-data
