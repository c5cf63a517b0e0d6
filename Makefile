# Thin wrapper around CMake. `make` builds into build/, `make test` runs every test.
PREFIX ?= /usr/local
DESTDIR ?=
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD ?= build
FUZZ_SECONDS ?= 10

.PHONY: all build deps test test-fast test-asan test-fuzz fuzz-build demo bench install clean format

all: build

build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCH_WERROR=ON -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

deps:
	./scripts/install-deps

# Every test: the normal build (unit, schema, integration), the ASan+UBSan build of the
# unit tests, and a short run of every fuzz target.
test: build
	cd $(BUILD) && ctest --output-on-failure -j 2
	$(MAKE) test-asan test-fuzz
	@echo "make test: all suites passed"

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -L unit

test-asan:
	@cmake -S . -B $(BUILD)/asan -DCMAKE_BUILD_TYPE=Debug -DCH_WERROR=ON -DCH_SANITIZE=ON >/dev/null
	@cmake --build $(BUILD)/asan -j $(JOBS)
	cd $(BUILD)/asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -L unit -j 2

fuzz-build:
	@CC=clang cmake -S . -B $(BUILD)/fuzz -DCMAKE_BUILD_TYPE=Debug -DCH_WERROR=ON -DCH_FUZZ=ON >/dev/null
	@cmake --build $(BUILD)/fuzz -j $(JOBS)

test-fuzz: fuzz-build
	./tests/fuzz/run-fuzzers $(BUILD)/fuzz/bin $(FUZZ_SECONDS)

demo: build
	./scripts/demo

bench: build
	./bench/run

install: build
	DESTDIR=$(DESTDIR) cmake --install $(BUILD) --prefix $(PREFIX)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)
