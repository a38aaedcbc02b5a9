#!/bin/sh
# Compile a few sources into one program with the project's flags, without the
# shared library: for checking one module while others are being edited.
#   tests/cc.sh OUT SRC...
out=$1; shift
PKGS="libczmq libzmq rdkafka lua5.4 yaml-0.1 libcurl jansson libsodium libsystemd libmicrohttpd cmocka"
exec ${CC:-cc} -std=gnu11 -O1 -g -Wall -Wextra -Wno-unused-parameter -D_GNU_SOURCE \
  -Icommon -Iaudit -Iagents -Ilua -Idaemon -Idaemon/http $(pkg-config --cflags $PKGS) ${EXTRA_CFLAGS:-} \
  "$@" -o "$out" $(pkg-config --libs $PKGS) -lpthread -lm
