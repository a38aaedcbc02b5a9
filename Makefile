# meshd - build, test, demo.
#
# Every .c under common/ audit/ lua/ agents/ (and its stage folders agents/*/) daemon/ (and
# daemon/*/) (except each binary's main.c) goes into one static library; binaries and tests link against it, so a new
# module needs no Makefile edit.  tools/<name>.c is the binary build/<name>;
# tests/unit/test_<x>.c is build/tests/test_<x>; tests/helpers/<x>.c is
# build/tests/<x>.
#
#   make deps    install the Debian packages the project needs (idempotent, quiet)
#   make         build/meshd build/mesh-agent build/meshctl build/mesh-gen
#   make test    unit tests, rule tests, integration tests (installs TEST_DEBS too)
#   make asan    the same tests under AddressSanitizer + UBSan (build-asan/)
#   make demo    the embedded default end to end
#   make fuzz    every libFuzzer target for FUZZ_SECONDS each (default 600; build-fuzz/)
#   make fuzz-smoke  the same, 30 s each (what CI runs)
#   make install PREFIX=/usr/local DESTDIR=
#   make deb     a Debian package in $(B)/deb/ (debhelper, dpkg-buildpackage; docs/packaging.md)
#
# CPPFLAGS and LDFLAGS are honoured (dpkg-buildflags' hardening flags in the package build).

B        ?= build
CC       ?= cc
PKGS     := libczmq libzmq rdkafka lua5.4 yaml-0.1 libcurl jansson libsodium libsystemd libmicrohttpd libseccomp
CFLAGS   ?= -O2 -g
XCFLAGS  := -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Werror=implicit-function-declaration \
            -Icommon -Iaudit -Iagents $(addprefix -I,$(wildcard agents/*/)) -Ilua -Idaemon $(addprefix -I,$(wildcard daemon/*/)) -D_GNU_SOURCE \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# Lua links statically: the gates call into it a few hundred times per decision, and
# calls through the shared library's PLT cost about a tenth of the chain's time
# (bench/gate_bench.c; docs/perf/gates.md).  Same Debian build, 5.4.4, either way.
LDLIBS   += $(shell pkg-config --libs $(filter-out lua5.4,$(PKGS)) 2>/dev/null) \
            -Wl,-Bstatic $(shell pkg-config --libs lua5.4 2>/dev/null) -Wl,-Bdynamic -ldl -lpthread -lm
PREFIX   ?= /usr/local
DESTDIR  ?=

DEBS := build-essential pkg-config libczmq-dev libzmq3-dev librdkafka-dev liblua5.4-dev \
        libyaml-dev libcmocka-dev libcurl4-openssl-dev libjansson-dev libsodium-dev \
        libsystemd-dev libmicrohttpd-dev libseccomp-dev kcat python3
# Only the tests need these (immutable directories, another user, dropping privileges,
# curl for the test inference server's self-check and the HTTP listener, prometheus for
# promtool and a real Prometheus scraping /metrics, chromium for the status page's browser
# test).
TEST_DEBS := e2fsprogs passwd util-linux curl prometheus chromium
# Only `make deb` needs these (and tests/integration/deb_package.sh, through it).
DEB_DEBS  := debhelper dpkg-dev fakeroot lintian

LIBSRC   := $(filter-out %/main.c,$(wildcard common/*.c audit/*.c lua/*.c agents/*.c agents/*/*.c daemon/*.c daemon/*/*.c))
LIBOBJ   := $(LIBSRC:%.c=$(B)/obj/%.o)
# The status page's files (daemon/http/statuspage/*) compiled in as C arrays (a generated
# source in $(B)/gen/), so meshd serves them without reading anything at run time.
SP_ASSETS := $(sort $(wildcard daemon/http/statuspage/*))
LIBOBJ   += $(B)/obj/gen/statuspage_assets.o
TOOLS    := $(patsubst tools/%.c,$(B)/%,$(wildcard tools/*.c))
UNITS    := $(patsubst tests/unit/%.c,$(B)/tests/%,$(wildcard tests/unit/test_*.c))
HELPERS  := $(patsubst tests/helpers/%.c,$(B)/tests/%,$(wildcard tests/helpers/*.c))
BENCHES  := $(patsubst bench/%.c,$(B)/bench/%,$(wildcard bench/*.c))
BINS     := $(B)/meshd $(B)/mesh-agent $(TOOLS)

.PHONY: all deps test asan demo bench nab install deb clean format fuzz fuzz-build fuzz-smoke
all: $(BINS) $(UNITS) $(HELPERS) $(BENCHES)

deps:
	@missing=""; for p in $(DEBS) $(EXTRA_DEBS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "make deps: installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(B)/obj/%.o: %.c $(wildcard common/*.h audit/*.h agents/*.h agents/*/*.h lua/*.h daemon/*.h daemon/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(XCFLAGS) -c $< -o $@

# The build's identity (common/version.h), passed to that one object: the release from
# VERSION, the commit and `git describe` (unknown outside a git checkout), the date (UTC,
# SOURCE_DATE_EPOCH when set).  The stamp changes only when one of them does, so a new
# commit rebuilds version.o and relinks, nothing else.
MESH_VERSION   := $(shell cat VERSION 2>/dev/null || echo unknown)
MESH_COMMIT    := $(shell c=$$(git rev-parse --short=7 HEAD 2>/dev/null) && { git diff --quiet HEAD -- 2>/dev/null || c="$$c-dirty"; echo "$$c"; })
MESH_DESCRIBE  := $(shell git describe --tags --always --dirty 2>/dev/null)
MESH_DATE      := $(shell date -u -d @$${SOURCE_DATE_EPOCH:-$$(date +%s)} +%Y-%m-%d)
MESH_VSTAMP    := $(MESH_VERSION) $(MESH_COMMIT) $(MESH_DESCRIBE) $(MESH_DATE)
$(shell mkdir -p $(B) && (echo '$(MESH_VSTAMP)' | cmp -s - $(B)/version.stamp || echo '$(MESH_VSTAMP)' > $(B)/version.stamp))
$(B)/obj/common/version.o: $(B)/version.stamp VERSION
$(B)/obj/common/version.o: XCFLAGS += -DMESH_VERSION='"$(MESH_VERSION)"' \
  -DMESH_GIT_COMMIT='"$(MESH_COMMIT)"' -DMESH_GIT_DESCRIBE='"$(MESH_DESCRIBE)"' \
  -DMESH_BUILD_DATE='"$(MESH_DATE)"'

$(B)/gen/statuspage_assets.c: $(SP_ASSETS) tools/statuspage_embed.py
	@mkdir -p $(dir $@)
	python3 tools/statuspage_embed.py $@ $(SP_ASSETS)
$(B)/obj/gen/statuspage_assets.o: $(B)/gen/statuspage_assets.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(XCFLAGS) -c $< -o $@

# The unit tests' shared headers (tests/unit/*.h) are prerequisites of the tests only.
$(UNITS:$(B)/tests/%=$(B)/obj/tests/unit/%.o): $(wildcard tests/unit/*.h)

$(B)/libmesh.a: $(LIBOBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/meshd: $(B)/obj/daemon/main.o $(B)/libmesh.a
	$(CC) $(CFLAGS) $(XCFLAGS) $(LDFLAGS) $^ -o $@ $(LDLIBS)
$(B)/mesh-agent: $(B)/obj/agents/main.o $(B)/libmesh.a
	$(CC) $(CFLAGS) $(XCFLAGS) $(LDFLAGS) $^ -o $@ $(LDLIBS)
$(B)/%: $(B)/obj/tools/%.o $(B)/libmesh.a
	$(CC) $(CFLAGS) $(XCFLAGS) $(LDFLAGS) $^ -o $@ $(LDLIBS)
$(B)/tests/test_%: $(B)/obj/tests/unit/test_%.o $(B)/libmesh.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(XCFLAGS) $(LDFLAGS) $^ -o $@ $(LDLIBS) -lcmocka
$(B)/bench/%: $(B)/obj/bench/%.o $(B)/libmesh.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(XCFLAGS) $(LDFLAGS) $^ -o $@ $(LDLIBS)
$(B)/tests/%: $(B)/obj/tests/helpers/%.o $(B)/libmesh.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(XCFLAGS) $(LDFLAGS) $^ -o $@ $(LDLIBS)

# The build of the tests depends on deps so that a fresh machine gets there.
test:
	@$(MAKE) --no-print-directory deps EXTRA_DEBS="$(TEST_DEBS)"
	@$(MAKE) --no-print-directory all
	@B=$(B) tests/run.sh

asan:
	@$(MAKE) --no-print-directory deps EXTRA_DEBS="$(TEST_DEBS)"
	@$(MAKE) --no-print-directory B=build-asan \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" all
	@B=build-asan ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 tests/run.sh

# libFuzzer: one harness per parser of untrusted bytes, tests/fuzz/fuzz_<target>.c, seed
# corpus tests/fuzz/corpus/<target>/; the library is built with clang into build-fuzz/
# instrumented for coverage, ASan and UBSan.  docs/fuzzing.md has the runs and figures.
FUZZ_DEBS    := clang libclang-rt-14-dev
FUZZ_SECONDS ?= 600
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS  := -O1 -g $(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(filter-out tests/fuzz/fuzz_common.c,$(wildcard tests/fuzz/fuzz_*.c)))

.PRECIOUS: $(B)/obj/tests/fuzz/%.o

$(B)/fuzz/fuzz_%: $(B)/obj/tests/fuzz/fuzz_%.o $(B)/obj/tests/fuzz/fuzz_common.o $(B)/libmesh.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(XCFLAGS) $(LDFLAGS) -fsanitize=fuzzer $^ -o $@ $(LDLIBS)

fuzz-build:
	@$(MAKE) --no-print-directory deps EXTRA_DEBS="$(FUZZ_DEBS)"
	@$(MAKE) --no-print-directory B=build-fuzz CC=clang CFLAGS="$(FUZZ_CFLAGS)" \
	  $(FUZZ_TARGETS:%=build-fuzz/fuzz/fuzz_%)

fuzz: fuzz-build
	@B=build-fuzz FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh $(FUZZ_TARGETS)

fuzz-smoke: fuzz-build
	@B=build-fuzz FUZZ_SECONDS=30 tests/fuzz/run.sh $(FUZZ_TARGETS)

demo: deps
	@$(MAKE) --no-print-directory all
	@B=$(B) tools/demo.sh

# Benchmarks print tables with ratios against a baseline measured in the same run;
# figures are recorded in docs/performance.md.  Never part of `make test`.
bench: deps
	@$(MAKE) --no-print-directory all
	@B=$(B) bench/run.sh

# Detection quality on NAB: NAB=<data root> (default ../shared/nab), NAB_OUT=<results dir>.
NAB     ?= ../shared/nab
NAB_OUT ?= $(B)/nab
nab: deps
	@$(MAKE) --no-print-directory all
	@B=$(B) NAB=$(NAB) NAB_OUT=$(NAB_OUT) bench/nab.sh

# The installed template names the shipped rules where they are installed: ../rules/
# (right in the source tree, config/../rules) becomes $(PREFIX)/share/meshd/rules/.
# The config holds no secrets (only paths of files that do) and is 0644 so that the
# service's user can read it; /etc/meshd itself is 0750 root:meshd (systemd/meshd.tmpfiles).
# An existing /etc/meshd/meshd.yaml is never overwritten: the template goes beside it as
# meshd.yaml.new.
INSTALL_BINS := $(B)/meshd $(B)/mesh-agent $(B)/meshctl
install: $(INSTALL_BINS)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/meshd/rules \
	  $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5 \
	  $(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
	  $(DESTDIR)/etc/meshd $(DESTDIR)/lib/systemd/system \
	  $(DESTDIR)/usr/lib/sysusers.d $(DESTDIR)/usr/lib/tmpfiles.d
	install -m 0755 $(INSTALL_BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 rules/*.lua $(DESTDIR)$(PREFIX)/share/meshd/rules/
	install -m 0644 config/meshd-alerts.yml $(DESTDIR)$(PREFIX)/share/meshd/
	install -m 0644 docs/man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 0644 docs/man/*.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 0644 docs/man/*.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	install -m 0644 contrib/meshctl.bash-completion \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions/meshctl
	@conf=$(DESTDIR)/etc/meshd/meshd.yaml; \
	if [ -e "$$conf" ]; then conf=$$conf.new; \
	  echo "make install: $(DESTDIR)/etc/meshd/meshd.yaml exists and is kept; the new template is $$conf"; fi; \
	echo "sed '/^[[:space:]]*#/!s|\.\./rules/|$(PREFIX)/share/meshd/rules/|g' config/meshd.yaml > $$conf"; \
	sed '/^[[:space:]]*#/!s|\.\./rules/|$(PREFIX)/share/meshd/rules/|g' config/meshd.yaml > "$$conf" && \
	chmod 0644 "$$conf"
	sed 's|@PREFIX@|$(PREFIX)|g' systemd/meshd.service > $(DESTDIR)/lib/systemd/system/meshd.service
	chmod 0644 $(DESTDIR)/lib/systemd/system/meshd.service
	install -m 0644 systemd/meshd.sysusers $(DESTDIR)/usr/lib/sysusers.d/meshd.conf
	install -m 0644 systemd/meshd.tmpfiles $(DESTDIR)/usr/lib/tmpfiles.d/meshd.conf

# The Debian package, built with the distribution's tools from a copy of the tree in
# $(B)/deb/src (dpkg-buildpackage writes into the parent directory, so everything stays
# under $(B)/deb/); lintian runs on the result (docs/packaging.md lists the warnings kept).
deb:
	@$(MAKE) --no-print-directory deps EXTRA_DEBS="$(DEB_DEBS)"
	rm -rf $(B)/deb
	mkdir -p $(B)/deb/src
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	  git ls-files -z --cached --others --exclude-standard | grep -zv '^$(B)/' | \
	    tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C $(B)/deb/src; \
	else \
	  tar --exclude='./build*' --exclude='./$(B)' --exclude=./.git -cf - . | tar -xf - -C $(B)/deb/src; \
	fi
	cd $(B)/deb/src && dpkg-buildpackage -b -us -uc -j2 > ../build.log 2>&1 || \
	  { tail -40 ../build.log; exit 1; }
	rm -rf $(B)/deb/src
	lintian --fail-on error $(B)/deb/*.deb | tee $(B)/deb/lintian.txt
	@ls -1 $(B)/deb/*.deb

format:
	clang-format -i $(wildcard */*.c */*.h agents/*/*.c agents/*/*.h tests/*/*.c)

clean:
	rm -rf build build-asan build-fuzz
