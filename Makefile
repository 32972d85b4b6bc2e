# rolegate build. Every library is found through pkg-config; every build is
# -std=c11 -Wall -Wextra -Werror. Each layer of DESIGN.md is its own archive
# (build/lib<layer>.a) so a unit test links only the layers it stands on.
#   make            build bin/rolegate
#   make check      install missing packages, build, run every test
#   make asan       the same tests under ASan + UBSan (build-asan/)
#   make run        serve the default config (SQLite under var/)
#   make deps       apt-get the Debian packages that are missing
#   make bench      build and run tests/bench/ (not part of check)
#   make fuzz       libFuzzer targets of tests/fuzz/, FUZZ_SECONDS each
#   make lint       the layer check, then cppcheck + clang-tidy over src/
#   make layers     every include of src/ against DESIGN.md's layer table
#   make screenshots  the console screenshots of the README (docs/screenshots/)

CC       ?= cc
BUILD    ?= build
# `make` alone builds everything (the layer rules below come first)
.DEFAULT_GOAL := all
PKGS     := jansson sqlite3 libpq libmicrohttpd inih openssl libjwt hiredis libcurl \
            lasso glib-2.0 gobject-2.0 xmlsec1 libxml-2.0
WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wformat=2 -Wno-unused-parameter
OPT      ?= -O2 -g
SAN      ?=
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(OPT) $(SAN) -Iinclude -MMD -MP
PKG_CFLAGS   = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS     = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm
CMOCKA_LIBS  = $(shell pkg-config --libs cmocka 2>/dev/null)

# Layers, lowest first. DEPS_x: what a test of layer x links, highest first.
LAYERS := util core store cache session saml oidc http api gateway
DEPS_util    := util
DEPS_core    := core util
DEPS_store   := store core util
DEPS_cache   := cache store core util
DEPS_session := session core util
DEPS_saml    := saml util
DEPS_oidc    := oidc util
DEPS_http    := http util
DEPS_api     := api http session cache saml oidc store core util
DEPS_gateway := gateway api http session cache saml oidc store core util
DEPS_main    := $(DEPS_gateway)

define layer_rules
SRC_$(1) := $$(wildcard src/$(1)/*.c)
OBJ_$(1) := $$(patsubst src/%.c,$(BUILD)/obj/%.o,$$(SRC_$(1)))
$(BUILD)/lib$(1).a: $$(OBJ_$(1)) $(BUILD)/empty.o
	@mkdir -p $$(@D)
	@rm -f $$@
	ar rcs $$@ $$(OBJ_$(1)) $(BUILD)/empty.o
endef
$(foreach l,$(LAYERS),$(eval $(call layer_rules,$(l))))

libs_for = $(foreach l,$(DEPS_$(1)),$(BUILD)/lib$(l).a)

# The console's and the portal's files (src/console/, plain ES modules, no
# build step) are embedded into the gateway layer as a generated C array, so
# the binary serves them from any working directory.
CONSOLE_FILES := $(sort $(filter-out %.sh,$(wildcard src/console/*)))
OBJ_gateway   += $(BUILD)/obj/gen/console_assets.o
$(BUILD)/libgateway.a: $(BUILD)/obj/gen/console_assets.o
$(BUILD)/gen/console_assets.c: src/console/embed.sh $(CONSOLE_FILES)
	@mkdir -p $(@D)
	sh src/console/embed.sh $(CONSOLE_FILES) > $@.tmp && mv $@.tmp $@
$(BUILD)/obj/gen/console_assets.o: $(BUILD)/gen/console_assets.c
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) -c $< -o $@
# rolegate --version: lasso and libjwt report no version at run time
$(BUILD)/obj/gateway/version.o: PKG_CFLAGS += \
  -DRG_BUILT_LASSO='"$(shell pkg-config --modversion lasso 2>/dev/null)"' \
  -DRG_BUILT_LIBJWT='"$(shell pkg-config --modversion libjwt 2>/dev/null)"'

# core is pure (DESIGN.md): it is compiled with no library include paths at
# all, so an #include of anything but libc and rolegate headers fails here.
$(BUILD)/obj/core/%.o: src/core/%.c
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) -c $< -o $@
$(BUILD)/obj/%.o: src/%.c
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(PKG_CFLAGS) -c $< -o $@
$(BUILD)/empty.o:
	@mkdir -p $(@D)
	echo 'typedef int rg_empty_unit;' | $(CC) -x c -c - -o $@

.PHONY: all check asan run deps clean bench unit fixtures fuzz lint layers screenshots
all: bin-dir $(BUILD)/rolegate $(BUILD)/fixtures

bin-dir:
	@mkdir -p bin

# the command line: src/main.c and the files beside it (serve.c)
OBJ_main := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(wildcard src/*.c))
$(BUILD)/rolegate: $(OBJ_main) $(BUILD)/empty.o $(call libs_for,main)
	$(CC) $(SAN) -o $@ $(OBJ_main) $(call libs_for,main) $(PKG_LIBS)
	@if [ "$(BUILD)" = build ]; then ln -sf ../build/rolegate bin/rolegate; fi

# Unit tests: tests/unit/test_<layer>_<name>.c, cmocka, one binary each.
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
layer_of   = $(word 2,$(subst _, ,$(notdir $(1))))
.SECONDEXPANSION:
$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/empty.o $$(call libs_for,$$(call layer_of,$$*))
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(PKG_CFLAGS) -Itests/unit -o $@ $< \
	  $(call libs_for,$(call layer_of,$*)) $(CMOCKA_LIBS) $(PKG_LIBS)

# Helper programs for tests and fixtures: idp-fixtures/*.c and tests/tools/*.c
FIXTURE_SRC := $(wildcard idp-fixtures/*.c) $(wildcard tests/tools/*.c)
FIXTURE_BIN := $(patsubst %.c,$(BUILD)/fixtures/%,$(notdir $(FIXTURE_SRC)))
$(BUILD)/fixtures: $(FIXTURE_BIN)
	@mkdir -p $@
vpath %.c idp-fixtures tests/tools
$(BUILD)/fixtures/%: %.c $(BUILD)/empty.o $(call libs_for,main)
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(PKG_CFLAGS) -o $@ $< $(call libs_for,main) $(PKG_LIBS)

unit: $(UNIT_BIN)

check: deps
	$(MAKE) all unit
	BUILD=$(BUILD) tests/run

# No test needs the slow unwinder (fast_unwind_on_malloc=0) any more: lasso
# and GLib have no frame pointers, so only it reached the rolegate frames
# suppressions named, and it made a lasso-heavy run 20-70x slower; the lasso
# leaks it was for are gone (tests/lsan.supp says how).
# The PostgreSQL backend runs under ASan through the store's unit tests
# (unit-pg); the eight integration
# suites repeated on PostgreSQL run in `make check` only (RG_NO_PG_INTEG):
# under ASan they would re-test, slowly, what their SQLite run covers, and
# CI must stay under 30 minutes. For the same reason the SQLite integration
# suites run in two lanes here as they do in make check (tests/run).
asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -g" \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" all unit
	BUILD=build-asan RG_NO_PG_INTEG=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 tests/run

BENCH_SRC := $(wildcard tests/bench/bench_*.c)
BENCH_BIN := $(patsubst tests/bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))
$(BUILD)/bench/%: tests/bench/%.c $(BUILD)/empty.o $(call libs_for,main)
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(PKG_CFLAGS) -O2 -o $@ $< $(call libs_for,main) $(PKG_LIBS)
bench: all $(BENCH_BIN)
	tests/bench/run

# The runners under tests/ take the build's facts (packages, warnings,
# layers and what each stands on) from here: `make -s print-VAR` prints one,
# and the targets below pass them in the environment.
print-%:
	@echo '$($*)'
RUNNER_ENV = PKGS="$(PKGS)" WARN="$(WARN)" LAYERS="$(LAYERS)" \
             $(foreach l,$(LAYERS) main,DEPS_$(l)="$(DEPS_$(l))")

# libFuzzer targets of tests/fuzz/ (clang, build-fuzz/), FUZZ_SECONDS each.
FUZZ_SECONDS ?= 20
fuzz:
	$(RUNNER_ENV) tests/fuzz/run $(FUZZ_SECONDS)

# Every include against DESIGN.md's layer table (tests/lint/layers), the
# size rule (tests/lint/sizes: files <= 600 lines, functions <= 120) and no
# error call that names an HTTP status instead of a kind (tests/lint/error_kinds),
# then cppcheck + clang-tidy over src/ (suppressions, each with its reason, in tests/lint/).
layers:
	@$(RUNNER_ENV) tests/lint/layers
	@tests/lint/sizes
	@tests/lint/error_kinds --check
lint: layers
	$(RUNNER_ENV) tests/lint/run

# The README's screenshots of the console, taken by the browser tests.
screenshots: all
	RG_SCREENSHOTS=docs/screenshots TESTS=test_console tests/run

run: deps
	$(MAKE) all
	./build/rolegate serve -c etc/rolegate.conf --demo

deps:
	@.ci/deps

clean:
	rm -rf build build-asan bin

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
