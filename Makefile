# agentroot — the two commands (and a few helpers).
#
#   make demo   install what is missing, build, run the demo on embedded defaults
#   make test   install what is missing, build, run every test (+ ASan+UBSan unit tests, fuzz smoke)
#   make bench  install what is missing, build, run the benchmarks -> build/bench/results.json
#
# Builds are out of tree: build/ (RelWithDebInfo), build-asan/ (sanitizers), build-fuzz/ (clang, libFuzzer).

BUILD_DIR      ?= build
ASAN_BUILD_DIR ?= build-asan
FUZZ_BUILD_DIR ?= build-fuzz
CTEST_JOBS     ?= 2
CMAKE_FLAGS    ?=

# Let ccache hit across checkouts (CI clones into a fresh folder): paths under
# this tree are hashed relative to it, and the working directory is not hashed.
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := true

.PHONY: all deps configure build configure-asan build-asan configure-fuzz test test-fast test-asan test-fuzz demo bench clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD_DIR)/build.ninja: CMakeLists.txt | deps
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

configure: deps $(BUILD_DIR)/build.ninja

build: configure
	cmake --build $(BUILD_DIR)

$(ASAN_BUILD_DIR)/build.ninja: CMakeLists.txt | deps
	cmake -S . -B $(ASAN_BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DAGENTROOT_SANITIZE=ON \
	  -DAGENTROOT_BUILD_BENCH=OFF $(CMAKE_FLAGS)

configure-asan: deps $(ASAN_BUILD_DIR)/build.ninja

build-asan: configure-asan
	cmake --build $(ASAN_BUILD_DIR)

$(FUZZ_BUILD_DIR)/build.ninja: CMakeLists.txt | deps
	CC=clang CXX=clang++ cmake -S . -B $(FUZZ_BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DAGENTROOT_FUZZ=ON -DAGENTROOT_BUILD_BENCH=OFF $(CMAKE_FLAGS)

configure-fuzz: deps $(FUZZ_BUILD_DIR)/build.ninja

# Every test in the normal build, the unit tests again under ASan+UBSan, and a
# short libFuzzer smoke run of every parser.
test: test-fast test-asan test-fuzz

# Child processes the tests start (swtpm, PostgreSQL, the verifier) leave
# their logs under $(BUILD_DIR)/test-logs; after the run every log is scanned
# for tokens, private keys and PINs (THREATS.md #20).
test-fast: build
	rm -rf $(BUILD_DIR)/test-logs
	AGENTROOT_TEST_LOG_DIR=$(abspath $(BUILD_DIR))/test-logs \
	  ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(CTEST_JOBS)
	scripts/scan-test-logs.py $(BUILD_DIR)/Testing/Temporary $(BUILD_DIR)/test-logs

test-asan: build-asan
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir $(ASAN_BUILD_DIR) --output-on-failure -j $(CTEST_JOBS) -L unit
	scripts/scan-test-logs.py $(ASAN_BUILD_DIR)/Testing/Temporary

test-fuzz: configure-fuzz
	cmake --build $(FUZZ_BUILD_DIR) --target fuzz_all
	ctest --test-dir $(FUZZ_BUILD_DIR) --output-on-failure -j $(CTEST_JOBS) -L fuzz

demo: build
	scripts/demo.sh $(BUILD_DIR)

bench: build
	scripts/bench.py --build-dir $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR) $(ASAN_BUILD_DIR)
