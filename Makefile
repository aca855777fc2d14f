# A thin wrapper around CMake. `make run`: the end-to-end demo; `make test`: every test.
BUILD ?= build
CMAKE_FLAGS ?=
JOBS ?= $(shell nproc)

.PHONY: all deps build run test docs install clean sanitize fuzz bench

all: build

deps:
	@./.ci/deps

# Configuring an existing build directory again takes a fraction of a second and applies CMAKE_FLAGS.
build: deps
	@cmake -S . -B $(BUILD) -G Ninja $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

run: build
	@./tests/demo.sh $(BUILD)/fleetkey

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

# Regenerates completions/ and the command reference in man/fleetkey.1 from the CLI definition.
docs: build
	cmake --build $(BUILD) --target docs

install: build
	cmake --install $(BUILD)

sanitize:
	$(MAKE) test BUILD=build-asan CMAKE_FLAGS="-DFLEETKEY_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug"

clean:
	rm -rf $(BUILD) build-asan build-fuzz
