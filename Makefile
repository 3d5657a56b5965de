# One Makefile for the whole tree. Sources are found by wildcard, so a new
# module in common/, a new service folder or a new test file needs no edit here.
#
#   make            build everything (build/)
#   make run        install what is missing, build, start the whole system on :8080
#   make stop       stop what `make run` started
#   make test       install, build, run every suite (also under ASan+UBSan), print one summary line
#   make fuzz       run each fuzz target for longer (FUZZ_SECONDS, default 60)
#   make bench      load benchmark (see docs/benchmarks.md)
#   make fmt        clang-format every C file in place
#   make lint       check the OpenAPI spec and the formatting
#
# SAN=1 builds into build/asan with AddressSanitizer and UBSan.

SAN ?= 0
ifeq ($(SAN),1)
  B := build/asan
  CC := clang
  SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  OPT := -O1 -g
else
  B := build
  CC ?= cc
  SANFLAGS :=
  OPT := -O2 -g
endif

PKGS := libczmq libzmq libpq msgpack libjwt libsodium jansson libcrypto
CFLAGS_PKG := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LIBS_PKG := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
VIPS_CFLAGS := $(shell pkg-config --cflags vips 2>/dev/null)
VIPS_LIBS := $(shell pkg-config --libs vips libjpeg 2>/dev/null)
CURL_LIBS := $(shell pkg-config --libs libcurl 2>/dev/null)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

WARN := -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow -Wformat=2 -Wno-format-nonliteral
CFLAGS := -std=gnu11 $(OPT) $(WARN) $(SANFLAGS) -Icommon -D_GNU_SOURCE $(CFLAGS_PKG) -MMD -MP
LDFLAGS := $(SANFLAGS)
LDLIBS := $(LIBS_PKG) -lpthread -lm

COMMON_SRC := $(wildcard common/*.c)
COMMON_OBJ := $(COMMON_SRC:%.c=$(B)/obj/%.o)
LIBCOMMON := $(B)/libcommon.a

SERVICES := $(notdir $(patsubst %/,%,$(dir $(wildcard services/*/main.c))))
SERVICE_BINS := $(SERVICES:%=$(B)/bin/%)
GATEWAY_SRC := $(wildcard gateway/*.c)
GATEWAY_OBJ := $(GATEWAY_SRC:%.c=$(B)/obj/%.o)
TOOL_SRC := $(wildcard tools/*.c)
TOOL_BINS := $(TOOL_SRC:tools/%.c=$(B)/bin/%)
MOCK_SRC := $(wildcard tests/mocks/*.c)
MOCK_BINS := $(MOCK_SRC:tests/mocks/%.c=$(B)/bin/mock_%)

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_HELPERS := $(filter-out $(UNIT_SRC),$(wildcard tests/unit/*.c))
UNIT_BINS := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/unit/%)
ITEST_SRC := $(wildcard tests/integration/test_*.c)
ITEST_HELPERS := $(filter-out $(ITEST_SRC),$(wildcard tests/integration/*.c))
ITEST_BINS := $(ITEST_SRC:tests/integration/%.c=$(B)/tests/integration/%)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)

# Gateway objects other than main.o, so fuzz targets and unit tests can link them.
GATEWAY_LIB_OBJ := $(filter-out $(B)/obj/gateway/main.o,$(GATEWAY_OBJ))

.PHONY: all deps run stop test test-fast fuzz bench fmt lint clean web
all: $(LIBCOMMON) $(SERVICE_BINS) $(B)/bin/gateway $(TOOL_BINS) $(MOCK_BINS) $(UNIT_BINS) $(ITEST_BINS)

deps:
	@bash scripts/install-deps.sh

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(if $(findstring services/media,$<)$(findstring test_media,$<),$(VIPS_CFLAGS)) -c $< -o $@

$(LIBCOMMON): $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# services/<name>/*.c -> build/bin/<name>
.SECONDARY:
.SECONDEXPANSION:
$(B)/bin/%: $$(addprefix $(B)/obj/,$$(subst .c,.o,$$(wildcard services/$$*/*.c))) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LIBCOMMON) $(LDLIBS) $(if $(filter media,$*),$(VIPS_LIBS))

$(B)/bin/gateway: $(GATEWAY_OBJ) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(GATEWAY_OBJ) $(LIBCOMMON) $(LDLIBS) -lcivetweb

$(TOOL_BINS): $(B)/bin/%: $(B)/obj/tools/%.o $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(LIBCOMMON) $(LDLIBS) $(CURL_LIBS)

$(MOCK_BINS): $(B)/bin/mock_%: $(B)/obj/tests/mocks/%.o $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(LIBCOMMON) $(LDLIBS) $(CURL_LIBS)

$(UNIT_BINS): $(B)/tests/unit/%: $(B)/obj/tests/unit/%.o $(UNIT_HELPERS:%.c=$(B)/obj/%.o) $(LIBCOMMON) $(GATEWAY_LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(UNIT_HELPERS:%.c=$(B)/obj/%.o) $(GATEWAY_LIB_OBJ) $(LIBCOMMON) $(LDLIBS) -lcivetweb $(CMOCKA_LIBS)

$(ITEST_BINS): $(B)/tests/integration/%: $(B)/obj/tests/integration/%.o $(ITEST_HELPERS:%.c=$(B)/obj/%.o) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LIBCOMMON) $(LDLIBS) $(CURL_LIBS) $(CMOCKA_LIBS) $(if $(findstring test_media,$@),$(VIPS_LIBS))

# Fuzz targets: clang + libFuzzer, always with ASan/UBSan, built from the
# sources they exercise (not from the SAN build, whose objects lack coverage).
FUZZ_CFLAGS := -std=gnu11 -O1 -g -fsanitize=fuzzer,address,undefined -Icommon -Igateway -D_GNU_SOURCE $(CFLAGS_PKG)
build/fuzz/%: tests/fuzz/%.c $(COMMON_SRC) $(GATEWAY_LIB_OBJ:$(B)/obj/%.o=%.c)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $< $(COMMON_SRC) $(filter-out gateway/main.c,$(GATEWAY_SRC)) $(LIBS_PKG) -lcivetweb -lpthread -lm

# The media service's JPEG rewriting (libjpeg underneath).
build/fuzz/fuzz_jpeg_lossless: tests/fuzz/fuzz_jpeg_lossless.c services/media/jpeg_lossless.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -Iservices/media -o $@ $^ $(shell pkg-config --libs libjpeg)

run: deps all web
	@bash scripts/run.sh

stop:
	@bash scripts/stop.sh

test: deps web
	@bash tests/run.sh

test-fast: web
	@SKIP_SAN=1 SKIP_FUZZ=1 bash tests/run.sh

fuzz: deps $(FUZZ_BINS)
	@bash tests/fuzz/run.sh $${FUZZ_SECONDS:-60}

fuzz-build: $(FUZZ_BINS)

bench: deps all
	@bash bench/run.sh

fmt:
	clang-format -i $$(git ls-files '*.c' '*.h')

lint:
	@bash scripts/lint.sh

# The web UI: `npm ci` when the lockfile changed, `vite build` when a source
# changed (web/dist/index.html stands for the build); nothing to do otherwise.
ifneq ($(wildcard web/package.json),)
WEB_SRC := web/index.html web/vite.config.js $(shell find web/src web/public -type f 2>/dev/null)
web: web/dist/index.html

web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	@command -v npm >/dev/null || { echo "web: npm not found (Node.js 20.19+ is needed for the UI)" >&2; exit 1; }
	cd web && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Text files get a gzip copy beside them, served to clients that take gzip
# (gateway/static.c); made after the touch, so no copy is older than its file.
web/dist/index.html: web/node_modules/.package-lock.json $(WEB_SRC)
	cd web && npm run --silent build
	@touch $@
	find web/dist -type f \( -name '*.html' -o -name '*.js' -o -name '*.css' -o -name '*.svg' \
	  -o -name '*.json' -o -name '*.webmanifest' \) -size +1k -exec gzip -9 -k -f -n {} +
else
web:
	@true
endif

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
