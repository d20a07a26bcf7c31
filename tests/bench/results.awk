# Reading bench-results/ (tests/bench/matrix.sh): the fields of its JSON
# lines, the clients' names and the figures derived from a load point. Used
# with -f before the program of tests/bench/plots.sh and
# tests/bench/gen_benchmarks.sh. POSIX awk: Debian's default awk is mawk.

# The value of "key" in a JSON line whose values are numbers, strings,
# null or flat objects: a number as written, a string unescaped, "null";
# "" when the key is absent.
function jget(line, key,    i, rest, v, c) {
    i = index(line, "\"" key "\":")
    if (!i)
        return ""
    rest = substr(line, i + length(key) + 3)
    if (substr(rest, 1, 1) != "\"") {
        match(rest, /^[^],}]*/)
        return substr(rest, 1, RLENGTH)
    }
    v = ""
    for (i = 2; i <= length(rest); i++) {
        c = substr(rest, i, 1)
        if (c == "\"")
            break
        if (c == "\\")
            c = substr(rest, ++i, 1)
        v = v c
    }
    return v
}

# The same value as a number (0 when absent or null): awk compares a
# string with a number as strings.
function jnum(line, key) {
    return jget(line, key) + 0
}

# How the document names each client of a load point.
function client_name(client) {
    if (client == "direct-new")
        return "direct, new connection each"
    if (client == "direct-keepalive")
        return "direct, kept alive"
    if (client == "anthropic")
        return "parley, anthropic dialect (HTTP/SSE)"
    if (client == "native")
        return "parley, native (WebSocket)"
    if (client == "native-store")
        return "parley, native, sessions in Redis"
    if (client == "anthropic-h2")
        return "parley, anthropic dialect (HTTP/2, TLS)"
    if (client == "sdk")
        return "official Anthropic SDK for Node (HTTP/1.1)"
    if (client == "sdk-h2")
        return "official Anthropic SDK for Node (HTTP/2, TLS)"
    if (client == "curl-floor")
        return "libcurl alone (HTTP/1.1)"
    if (client == "curl-floor-h2")
        return "libcurl alone (HTTP/2, TLS)"
    return client
}

# Replies per second that were the expected reply: a failed request ends
# fast, and must not count as throughput.
function good_rps(line,    n) {
    n = jget(line, "requests") + 0
    if (n == 0)
        return 0
    return jget(line, "rps") * (n - jget(line, "errors") - jget(line, "mismatches")) / n
}

# Seconds from the first send to the last end (the tools print rps over it).
function load_seconds(line,    rps) {
    rps = jget(line, "rps") + 0
    return rps > 0 ? jget(line, "requests") / rps : 0
}

# The client's CPU time per request, in microseconds.
function cpu_us_per_request(line,    n) {
    n = jget(line, "requests") + 0
    return n > 0 ? jget(line, "cpu_s") * 1e6 / n : 0
}

# CPU seconds as a percentage of one CPU over the load.
function cpu_percent(cpu_s, line,    s) {
    s = load_seconds(line)
    return s > 0 ? 100 * cpu_s / s : 0
}

# An integer with thousands separators: 25000 -> 25,000.
function grouped(n,    s, neg, out) {
    s = sprintf("%.0f", n)
    neg = substr(s, 1, 1) == "-"
    if (neg)
        s = substr(s, 2)
    out = ""
    while (length(s) > 3) {
        out = "," substr(s, length(s) - 2) out
        s = substr(s, 1, length(s) - 3)
    }
    return (neg ? "-" : "") s out
}

# A latency in milliseconds as the tables show it, "-" when there is none.
function ms(v) {
    return v == "" || v == "null" ? "-" : grouped(v)
}
