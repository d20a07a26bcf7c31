#!/bin/sh
# `make install` into a staging directory (DESTDIR), then what a user does:
# the installed files are in place, libparley exports only parley_ symbols,
# examples/hello.c copied out of the tree builds with
#   cc hello.c $(pkg-config --cflags --libs parley)
# and holds a two-turn conversation with the installed parley-refserver;
# the installed `parley` tool runs; `make uninstall` removes every file.
set -u
top=$(cd "${top_srcdir:-.}" && pwd)
build=$(pwd)
stage=$(mktemp -d)
work=$(mktemp -d)
server=""
passed=0
failed=0
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$stage" "$work"' EXIT

ok() { echo "[       OK ] $1"; passed=$((passed + 1)); }
bad() { echo "[  FAILED  ] $1"; failed=$((failed + 1)); }
finish() {
  echo "[  PASSED  ] $passed test(s)."
  if [ "$failed" -ne 0 ]; then echo "[  FAILED  ] $failed test(s)."; exit 1; fi
  exit 0
}

if ! ${MAKE:-make} -s -C "$build" install DESTDIR="$stage" >"$work/install.log" 2>&1; then
  cat "$work/install.log"
  bad "make install"
  finish
fi
bindir=$stage$(sed -n 's/^exec_prefix=//p' "$build/parley.pc" |
               sed "s|\${prefix}|$(sed -n 's/^prefix=//p' "$build/parley.pc")|")/bin
libdir_pc=$(find "$stage" -name parley.pc -path '*/pkgconfig/*' | head -n1)
libdir=$(dirname "$(dirname "$libdir_pc")")

missing=""
for f in "$bindir/parley" "$bindir/parley-refserver" "$libdir/libparley.so" \
         "$libdir/libparley.a" "$libdir_pc"; do
  [ -f "$f" ] || missing="$missing $f"
done
[ -n "$(find "$stage" -path '*/include/parley.h')" ] || missing="$missing include/parley.h"
if [ -z "$missing" ]; then ok "installed files"; else bad "installed files: missing$missing"; fi

others=$(nm -D --defined-only "$libdir/libparley.so" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' |
         grep -v '^parley_' | grep -v '^_' || true)
if [ -z "$others" ] && nm -D --defined-only "$libdir/libparley.so" | grep -q ' parley_send$'; then
  ok "only parley_ symbols exported"
else
  bad "exported symbols outside parley_: $others"
fi
soname=$(objdump -p "$libdir/libparley.so" | awk '$1 == "SONAME" {print $2}')
if [ "$soname" = "libparley.so.0" ]; then ok "libtool soname $soname"; else bad "soname '$soname'"; fi

export PKG_CONFIG_PATH="$(dirname "$libdir_pc")" PKG_CONFIG_SYSROOT_DIR="$stage"
cp "$top/examples/hello.c" "$work/demo.c"
# shellcheck disable=SC2046 # pkg-config's output is meant to be split
if (cd "$work" && ${CC:-cc} ${SANITIZER_CFLAGS:-} -Wall -Wextra -Werror demo.c \
      $(pkg-config --cflags --libs parley) -o demo) >"$work/cc.log" 2>&1; then
  ok "cc demo.c \$(pkg-config --cflags --libs parley)"
else
  cat "$work/cc.log"
  bad "the out-of-tree demo does not build"
fi

# A program built with pkg-config carries no run path: it finds
# libparley.so.0 where the loader looks, which after `make install` to
# /usr/local takes `ldconfig` (the README says so). Here the library is
# staged, so the loader is pointed at it instead.
if [ -x "$work/demo" ]; then
  runpath=$(objdump -p "$work/demo" | awk '$1 == "RPATH" || $1 == "RUNPATH" {print $2}')
  if [ -z "$runpath" ] && grep -q 'sudo ldconfig' "$top/README.md"; then
    ok "the demo has no run path, and the README says to run ldconfig after make install"
  else
    bad "the demo's run path is '$runpath', or the README does not mention ldconfig"
  fi
fi
export LD_LIBRARY_PATH="$libdir"
"$bindir/parley-refserver" --port 0 --quiet --api-key install-test-key >"$work/server.out" &
server=$!
port=""
for _ in $(seq 200); do
  port=$(sed -n 's/^listening on [0-9.]*:\([0-9]*\)$/\1/p' "$work/server.out")
  [ -n "$port" ] && break
  kill -0 "$server" 2>/dev/null || break
  sleep 0.05
done
expected=$(printf '[turn 1] hello\n[turn 2] and again')
if [ -z "$port" ]; then
  bad "the installed parley-refserver did not start"
elif [ -x "$work/demo" ]; then
  got=$(PARLEY_ENDPOINT="ws://127.0.0.1:$port/v1/stream" PARLEY_API_KEY=install-test-key \
        timeout 60 "$work/demo" 2>&1)
  if [ "$got" = "$expected" ]; then
    ok "the demo holds a conversation with parley-refserver"
  else
    printf 'expected:\n%s\ngot:\n%s\n' "$expected" "$got"
    bad "the demo's conversation"
  fi
fi

version=$("$bindir/parley" --version 2>&1)
case $version in
  *"$(sed -n 's/^Version: //p' "$libdir_pc")"*) ok "installed parley --version: $version" ;;
  *) bad "installed parley --version said: $version" ;;
esac

${MAKE:-make} -s -C "$build" uninstall DESTDIR="$stage" >/dev/null 2>&1
left=$(find "$stage" -type f | head -n5)
if [ -z "$left" ]; then ok "make uninstall removes every file"; else bad "left after uninstall: $left"; fi
finish
