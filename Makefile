# Thin wrapper around CMake. `make` builds into build/, `make test` runs every test.
PREFIX ?= /usr/local
DESTDIR ?=
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD ?= build
FUZZ_SECONDS ?= 10

.PHONY: all build deps test test-fast test-asan test-fuzz fuzz-build demo bench install deb test-packaging clean format format-check

all: build

build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCH_WERROR=ON -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

deps:
	./scripts/install-deps

# Every test: the normal build (unit, schema, integration), the ASan+UBSan build of the
# unit tests, and a short run of every fuzz target.
test: format-check build
	./scripts/check-structure
	cd $(BUILD) && ctest --output-on-failure -j 2
	$(MAKE) test-asan test-fuzz test-packaging
	@echo "make test: all suites passed"

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -L unit

test-asan:
	@cmake -S . -B $(BUILD)/asan -DCMAKE_BUILD_TYPE=Debug -DCH_WERROR=ON -DCH_SANITIZE=ON >/dev/null
	@cmake --build $(BUILD)/asan -j $(JOBS)
	cd $(BUILD)/asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -L unit -j 2

# The install layout and the Debian packages: units, man pages, completions, dashboard, rules,
# maintainer scripts (tests/packaging/check-packages), then a clang build as packagers make it.
test-packaging: deb
	./tests/packaging/check-packages $(BUILD)
	./scripts/build-matrix --quick $(BUILD)/matrix

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

# Debian packages (choria, choria-provisioner) into $(BUILD)/: a Release build with Debian's
# hardening flags, as a package build makes it, packaged by CPack.
DEB_FLAGS = DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get
deb:
	@CFLAGS="$$($(DEB_FLAGS) CFLAGS) $$($(DEB_FLAGS) CPPFLAGS)" LDFLAGS="$$($(DEB_FLAGS) LDFLAGS)" \
	  cmake -S . -B $(BUILD)/deb -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
	  -DCH_WERROR=ON -DCH_TESTS=OFF >/dev/null
	@cmake --build $(BUILD)/deb -j $(JOBS)
	cd $(BUILD)/deb && cpack -G DEB >/dev/null
	cp $(BUILD)/deb/*.deb $(BUILD)/
	@ls -1 $(BUILD)/*.deb

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

# Fails, naming the files, when a tracked C file is not formatted as .clang-format says.
format-check:
	@bad=$$(for f in $$(git ls-files '*.c' '*.h'); do \
	  clang-format --dry-run --Werror "$$f" >/dev/null 2>&1 || echo "$$f"; done); \
	if [ -n "$$bad" ]; then echo "format-check: run 'make format'; these differ:"; echo "$$bad"; exit 1; fi; \
	echo "format-check: $$(git ls-files '*.c' '*.h' | wc -l) files formatted"

clean:
	rm -rf $(BUILD)
