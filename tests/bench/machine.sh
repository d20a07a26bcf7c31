#!/usr/bin/env bash
# The facts about this machine and build that a benchmark figure depends on,
# one "key=value" line each, for docs/benchmarks.md (tests/bench/matrix.sh
# collects them, tests/bench/gen_benchmarks.sh shows them). Run it in the
# build directory; CC, CFLAGS and top_srcdir come from make. A fact that
# cannot be found is "unknown" rather than an error: the figures still
# stand, the reader only learns less about where they were made.
set -eu

fact() {
  printf '%s=%s\n' "$1" "${2:-unknown}"
}

# The first line of a command's output, or nothing when it fails.
first_line() {
  "$@" 2>/dev/null | head -n 1 || true
}

pkg_version() {
  # Debian's libwebsockets reports "4.1.6-": the dash is packaging noise.
  first_line pkg-config --modversion "$1" | sed 's/-$//'
}

cpuinfo() {
  awk -F': *' -v key="$1" '$1 ~ "^" key "[ \t]*$" { print $2; exit }' /proc/cpuinfo
}

fact cpus "$(nproc)"
fact cpu_model "$(cpuinfo 'model name')"
fact cpu_mhz "$(cpuinfo 'cpu MHz' | awk '{ printf "%.0f", $1 }')"
# The hypervisor flag is set inside a virtual machine.
if grep -qw hypervisor /proc/cpuinfo; then
  fact virtual "yes"
else
  fact virtual "no"
fi
fact memory_gib "$(awk '/^MemTotal:/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)"
fact kernel "$(uname -sr)"
fact debian "$(cat /etc/debian_version 2>/dev/null || true)"
fact compiler "$(first_line "${CC:-cc}" --version)"
fact cflags "${CFLAGS:-}"
fact glibc "$(first_line getconf GNU_LIBC_VERSION)"
fact libcurl "$(pkg_version libcurl)"
fact libwebsockets "$(pkg_version libwebsockets)"
fact json_c "$(pkg_version json-c)"
fact zstd "$(pkg_version libzstd)"
fact gnuplot "$(first_line gnuplot --version)"
# The peer: Node, and the official SDK's version as npm ci installed it.
fact node "$(first_line node --version)"
fact sdk "$(sed -n "s/^exports.VERSION = '\([^']*\)'.*/\1/p" \
  "${top_srcdir:-.}/tests/interop/node_modules/@anthropic-ai/sdk/version.js" 2>/dev/null || true)"
fact parley "$(first_line ./parley --version)"
# The commit, "+changes" when the tree differs from it in more than the
# files `make bench` itself writes.
top=${top_srcdir:-.}
commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || true)
if [ -n "$commit" ] && [ -n "$(git -C "$top" status --porcelain -- . ':!docs/benchmarks.md' \
                               ':!docs/img' ':!README.md' 2>/dev/null)" ]; then
  commit="$commit+changes"
fi
fact commit "$commit"
# What limits the baselines: a thread per caller needs descriptors, and a
# connection per request needs ephemeral ports out of TIME_WAIT.
fact nofile "$(ulimit -n)"
fact tcp_tw_reuse "$(cat /proc/sys/net/ipv4/tcp_tw_reuse 2>/dev/null || true)"
fact port_range "$(tr '\t' '-' < /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true)"
