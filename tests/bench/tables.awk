# The generated tables of docs/benchmarks.md, from the results of one
# `make bench` (tests/bench/matrix.sh). Run after results.awk:
#
#   awk -f results.awk -f tables.awk -v table=NAME [-v client=C] FILE...
#
# NAME and its input:
#   plot         load.jsonl: "concurrency replies/s p50 p99" of client C's
#                scenario 1 points (for tests/bench/plots.gp)
#   range        load.jsonl: "LOW to HIGH", scenario 1's conversations at once
#   classic      load.jsonl: the classic comparison
#   scenario1    load.jsonl: every scenario 1 point
#   ceiling      load.jsonl: every scenario 2 point
#   retry        load.jsonl: the automatic retry point
#   http         load.jsonl: every point of the HTTP scenario (issue 16)
#   http_side    load.jsonl: parley and the official SDK side by side there
#   store        load.jsonl: sessions in memory and in Redis (issue 15)
#   readme       load.jsonl: the README's table
#   connections  the output of bench_connections runs: what they show
#   targets      load.jsonl and the output of bench_memory: the targets
#
# The figures are computed from the JSON lines only, so that the document
# can always be regenerated from bench-results/.

BEGIN {
    nclients = split("direct-new direct-keepalive anthropic native sdk", order, " ")
    # Scenario 1's latency targets; also what "at the floor" means for
    # scenario 4 (the server's latency plus 5 ms, and plus 25 %).
    p50_slack_ms = 5
    p99_factor = 1.25
}

# Load points, in the order they ran.
/^\{"scenario":/ {
    n++
    line[n] = $0
    scenario[n] = jget($0, "scenario")
    who[n] = jget($0, "client")
    at_once[n] = jget($0, "concurrency")
    ran[n] = jget($0, "rps") != ""
}

# Memory per request in flight over HTTP/2 (issue 16): parley's
# (bench_memory) and libcurl's alone (curl_floor), from files of their own.
FILENAME ~ /memory-http2\.txt$/ && /^\{"bench":"memory"/ {
    http2_memory = $0
    next
}
FILENAME ~ /memory-http2-curl\.txt$/ && /^\{"requests":/ {
    http2_floor_memory = $0
    next
}

/^\{"bench":"memory"/ {
    memory = $0
}

/^\{"bench":"connections"/ {
    nconn++
    conn_line[nconn] = $0
}

# The point of `client` in `sc` with the most replies per second: its
# index, or 0 when none had any.
function best_point(sc, client,    i, best) {
    best = 0
    for (i = 1; i <= n; i++)
        if (scenario[i] == sc && who[i] == client && ran[i] && good_rps(line[i]) > 0 &&
            (!best || good_rps(line[i]) > good_rps(line[best])))
            best = i
    return best
}

# The scenario 1 point of `client` at `concurrency` with replies: its
# index, or 0.
function classic_point(client, concurrency,    i) {
    for (i = 1; i <= n; i++)
        if (scenario[i] == "classic" && who[i] == client && at_once[i] + 0 == concurrency &&
            ran[i] && good_rps(line[i]) > 0)
            return i
    return 0
}

# Why a point has no figures ("" when it has them).
function no_figures(i) {
    if (jget(line[i], "skipped") != "")
        return "skipped: " jget(line[i], "skipped")
    if (!ran[i])
        return "failed: " jget(line[i], "failed")
    return ""
}

# A table row of "-" cells after the first `lead` cells, for a point
# without figures, and its reason in the footnotes.
function row_without_figures(i, lead, ncells,    s, k) {
    s = lead
    for (k = 0; k < ncells; k++)
        s = s " - |"
    print s
    footnotes = footnotes sprintf("- %s, %s at once: %s\n", client_name(who[i]),
                                  grouped(at_once[i]), no_figures(i))
}

function print_footnotes() {
    if (footnotes != "")
        printf "\nPoints without figures:\n\n%s", footnotes
    footnotes = ""
}

function table_plot(    i) {
    for (i = 1; i <= n; i++)
        if (scenario[i] == "classic" && who[i] == client && ran[i] && good_rps(line[i]) > 0)
            printf "%s %.1f %s %s\n", at_once[i], good_rps(line[i]),
                   jget(line[i], "lat_ms_p50"), jget(line[i], "lat_ms_p99")
}

function table_range(    i, lo, hi) {
    for (i = 1; i <= n; i++)
        if (scenario[i] == "classic") {
            if (!lo || at_once[i] + 0 < lo)
                lo = at_once[i] + 0
            if (at_once[i] + 0 > hi)
                hi = at_once[i] + 0
        }
    printf "%s to %s", grouped(lo), grouped(hi)
}

# The largest scenario 1 load that every client ran (0: none).
function common_classic_load(    i, k, common) {
    common = 0
    for (i = 1; i <= n; i++) {
        if (scenario[i] != "classic" || at_once[i] + 0 <= common)
            continue
        for (k = 1; k <= nclients; k++)
            if (!classic_point(order[k], at_once[i]))
                break
        if (k > nclients)
            common = at_once[i] + 0
    }
    return common
}

function table_classic(    k, c, b, i, req, bad, skipped, cells, common, rule) {
    cells = "| metric |"
    rule = "|---|"
    for (k = 1; k <= nclients; k++) {
        cells = cells " " client_name(order[k]) " |"
        rule = rule "---:|"
    }
    print cells
    print rule
    for (k = 1; k <= nclients; k++)
        top_point[k] = best_point("classic", order[k])

    cells = "| max RPS: matching replies per second, the best point of the sweep |"
    for (k = 1; k <= nclients; k++) {
        b = top_point[k]
        if (b)
            cells = cells sprintf(" %s (%s at once) |", grouped(good_rps(line[b])),
                                  grouped(at_once[b]))
        else
            cells = cells " - |"
    }
    print cells

    cells = "| mean latency at that point |"
    for (k = 1; k <= nclients; k++) {
        b = top_point[k]
        cells = cells (b ? " " ms(jget(line[b], "lat_ms_mean")) " ms |" : " - |")
    }
    print cells

    # The best points may lie at different loads: the mean latency at the
    # largest load every client ran compares the clients at the same N.
    common = common_classic_load()
    if (common) {
        cells = sprintf("| mean latency at the same load: %s at once, the most all %d ran |",
                        grouped(common), nclients)
        for (k = 1; k <= nclients; k++)
            cells = cells " " ms(jget(line[classic_point(order[k], common)], "lat_ms_mean")) \
                    " ms |"
        print cells
    }

    cells = "| connection reuse: connections opened for the requests of that point |"
    for (k = 1; k <= nclients; k++) {
        b = top_point[k]
        if (!b) {
            cells = cells " - |"
            continue
        }
        c = jnum(line[b], "connections")
        req = jnum(line[b], "requests")
        cells = cells sprintf(" %s: %s for %s |", c < req ? "yes" : "no", grouped(c),
                              grouped(req))
    }
    print cells

    cells = "| automatic retry |"
    for (k = 1; k <= nclients; k++) {
        c = order[k]
        if (c ~ /^direct/) {
            cells = cells " by hand: the baseline has none, a rejection is an error |"
        } else if (c == "anthropic") {
            cells = cells " built in (429, 529 and 5xx before the first piece: " \
                          "[reliability.md](reliability.md)); not measured here |"
        } else if (c == "sdk") {
            cells = cells " built in (2 retries by default); not measured here |"
        } else {
            b = 0
            for (i = 1; i <= n; i++)
                if (scenario[i] == "retry" && who[i] == c && ran[i])
                    b = i
            if (b)
                cells = cells sprintf(" built in: %s retries, %s errors in %s requests " \
                                      "with %s %% rejected |",
                                      grouped(jget(line[b], "retries")),
                                      grouped(jget(line[b], "errors")),
                                      grouped(jget(line[b], "requests")),
                                      100 * jget(line[b], "reject_fraction"))
            else
                cells = cells " built in; the retry point did not run |"
        }
    }
    print cells

    cells = "| errors and mismatches over the sweep |"
    for (k = 1; k <= nclients; k++) {
        req = bad = skipped = 0
        for (i = 1; i <= n; i++) {
            if (scenario[i] != "classic" || who[i] != order[k])
                continue
            if (!ran[i]) {
                skipped++
                continue
            }
            req += jget(line[i], "requests")
            bad += jget(line[i], "errors") + jget(line[i], "mismatches")
        }
        cells = cells sprintf(" %s in %s requests%s |", grouped(bad), grouped(req),
                              skipped ? sprintf(" (%d point%s without figures)", skipped,
                                                skipped > 1 ? "s" : "") : "")
    }
    print cells
}

function table_scenario1(    i, l, lat) {
    print "| at once | client | requests | errors | replies/s | bound | mean ms | p50 ms " \
          "| p90 ms | p99 ms | max ms | connections | client CPU % | server CPU % " \
          "| client RSS MB |"
    print "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= n; i++) {
        if (scenario[i] != "classic")
            continue
        if (!ran[i]) {
            row_without_figures(i, sprintf("| %s | %s |", grouped(at_once[i]),
                                           client_name(who[i])), 13)
            continue
        }
        l = line[i]
        lat = jnum(l, "latency_ms")
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.0f | %.0f " \
               "| %.0f |\n",
               grouped(at_once[i]), client_name(who[i]), grouped(jget(l, "requests")),
               grouped(jget(l, "errors") + jget(l, "mismatches")), grouped(good_rps(l)),
               grouped(at_once[i] * 1000 / lat), ms(jget(l, "lat_ms_mean")),
               ms(jget(l, "lat_ms_p50")), ms(jget(l, "lat_ms_p90")),
               ms(jget(l, "lat_ms_p99")), ms(jget(l, "lat_ms_max")),
               grouped(jget(l, "connections")), cpu_percent(jget(l, "cpu_s"), l),
               cpu_percent(jget(l, "server_cpu_s"), l), jget(l, "max_rss_mb")
    }
    print_footnotes()
}

function table_ceiling(    i, l) {
    print "| at once | client | requests | errors | replies/s | client CPU us/request " \
          "| client CPU % | server CPU % | p50 ms | p99 ms | connections |"
    print "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= n; i++) {
        if (scenario[i] != "ceiling")
            continue
        if (!ran[i]) {
            row_without_figures(i, sprintf("| %s | %s |", grouped(at_once[i]),
                                           client_name(who[i])), 9)
            continue
        }
        l = line[i]
        printf "| %s | %s | %s | %s | %s | %.1f | %.0f | %.0f | %s | %s | %s |\n",
               grouped(at_once[i]), client_name(who[i]), grouped(jget(l, "requests")),
               grouped(jget(l, "errors") + jget(l, "mismatches")), grouped(good_rps(l)),
               cpu_us_per_request(l), cpu_percent(jget(l, "cpu_s"), l),
               cpu_percent(jget(l, "server_cpu_s"), l), ms(jget(l, "lat_ms_p50")),
               ms(jget(l, "lat_ms_p99")), grouped(jget(l, "connections"))
    }
    print_footnotes()
}

function table_retry(    i, l) {
    print "| client | rejected by the server | requests | errors | retries | mean ms " \
          "| p50 ms | p99 ms | max ms |"
    print "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= n; i++) {
        if (scenario[i] != "retry")
            continue
        if (!ran[i]) {
            row_without_figures(i, sprintf("| %s |", client_name(who[i])), 8)
            continue
        }
        l = line[i]
        printf "| %s | %s %% | %s | %s | %s | %s | %s | %s | %s |\n", client_name(who[i]),
               100 * jget(l, "reject_fraction"), grouped(jget(l, "requests")),
               grouped(jget(l, "errors") + jget(l, "mismatches")),
               grouped(jget(l, "retries")), ms(jget(l, "lat_ms_mean")),
               ms(jget(l, "lat_ms_p50")), ms(jget(l, "lat_ms_p99")), ms(jget(l, "lat_ms_max"))
    }
    print_footnotes()
}

# ---- the HTTP path, parley and the official SDK (issue 16) ----------------

function transport_name(client) {
    return client ~ /-h2$/ ? "HTTP/2 over TLS" : "HTTP/1.1"
}

function table_http(    i, l) {
    print "| transport | at once | client | requests | errors | replies/s | bound | p50 ms " \
          "| p99 ms | client CPU us/request | client CPU % | server CPU % | client RSS MB " \
          "| connections |"
    print "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= n; i++) {
        if (scenario[i] != "http")
            continue
        if (!ran[i]) {
            row_without_figures(i, sprintf("| %s | %s | %s |", transport_name(who[i]),
                                           grouped(at_once[i]), client_name(who[i])), 11)
            continue
        }
        l = line[i]
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %.1f | %.0f | %.0f | %s | %s |\n",
               transport_name(who[i]), grouped(at_once[i]), client_name(who[i]),
               grouped(jget(l, "requests")),
               grouped(jget(l, "errors") + jget(l, "mismatches")), grouped(good_rps(l)),
               grouped(at_once[i] * 1000 / jnum(l, "latency_ms")), ms(jget(l, "lat_ms_p50")),
               ms(jget(l, "lat_ms_p99")), cpu_us_per_request(l),
               cpu_percent(jget(l, "cpu_s"), l), cpu_percent(jget(l, "server_cpu_s"), l),
               jget(l, "max_rss_mb"), grouped(jget(l, "connections"))
    }
    print_footnotes()
}

# The point of `client` in scenario `sc` at `concurrency` with figures, or 0.
function point_of(sc, client, concurrency,    i) {
    for (i = 1; i <= n; i++)
        if (scenario[i] == sc && who[i] == client && at_once[i] + 0 == concurrency && ran[i])
            return i
    return 0
}

# One row of the side-by-side table: parley's client `ours` and the SDK's
# `theirs` at `concurrency` in scenario `sc`.
function side_row(sc, label, ours, theirs, concurrency,    a, b, ratio) {
    a = point_of(sc, ours, concurrency)
    b = point_of(sc, theirs, concurrency)
    if (!a && !b)
        return
    ratio = a && b && cpu_us_per_request(line[a]) > 0 ? \
            sprintf("%.1f", cpu_us_per_request(line[b]) / cpu_us_per_request(line[a])) : "-"
    printf "| %s, %s at once | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", label,
           grouped(concurrency), a ? grouped(good_rps(line[a])) : "-",
           b ? grouped(good_rps(line[b])) : "-",
           a ? ms(jget(line[a], "lat_ms_p50")) " / " ms(jget(line[a], "lat_ms_p99")) : "-",
           b ? ms(jget(line[b], "lat_ms_p50")) " / " ms(jget(line[b], "lat_ms_p99")) : "-",
           a ? sprintf("%.1f", cpu_us_per_request(line[a])) : "-",
           b ? sprintf("%.1f", cpu_us_per_request(line[b])) : "-", ratio,
           a ? jget(line[a], "max_rss_mb") : "-", b ? jget(line[b], "max_rss_mb") : "-"
}

function side_header() {
    print "| load | parley replies/s | SDK replies/s | parley p50 / p99 ms " \
          "| SDK p50 / p99 ms | parley CPU us/request | SDK CPU us/request " \
          "| SDK CPU / parley CPU | parley RSS MB | SDK RSS MB |"
    print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
}

# Every concurrency of scenario `sc`, in the order they ran, into list[].
function concurrencies(sc,    i, k, m, seen) {
    m = 0
    for (i = 1; i <= n; i++)
        if (scenario[i] == sc && !((sc, at_once[i]) in seen)) {
            seen[sc, at_once[i]] = 1
            list[++m] = at_once[i] + 0
        }
    return m
}

function table_http_side(    k, m) {
    side_header()
    m = concurrencies("http")
    for (k = 1; k <= m; k++)
        side_row("http", "HTTP/1.1", "anthropic", "sdk", list[k])
    for (k = 1; k <= m; k++)
        side_row("http", "HTTP/2 over TLS", "anthropic-h2", "sdk-h2", list[k])
}

# The README's tables: the classic comparison in short, and parley against
# the official SDK on the HTTP path.
function table_readme(    k, b, cells, rule, c, i, common, idle) {
    cells = "| metric |"
    rule = "|---|"
    for (k = 1; k <= nclients; k++) {
        cells = cells " " client_name(order[k]) " |"
        rule = rule "---:|"
    }
    print cells
    print rule
    cells = sprintf("| max requests/s (best point, %s at once) |", readme_range())
    for (k = 1; k <= nclients; k++) {
        b = best_point("classic", order[k])
        cells = cells (b ? " " grouped(good_rps(line[b])) " |" : " - |")
        top_point[k] = b
    }
    print cells
    cells = "| mean latency at that point |"
    for (k = 1; k <= nclients; k++)
        cells = cells (top_point[k] ? " " ms(jget(line[top_point[k]], "lat_ms_mean")) " ms |" \
                                    : " - |")
    print cells
    common = common_classic_load()
    if (common) {
        cells = sprintf("| mean latency, %s conversations at once |", grouped(common))
        for (k = 1; k <= nclients; k++)
            cells = cells " " ms(jget(line[classic_point(order[k], common)], "lat_ms_mean")) \
                    " ms |"
        print cells
    }
    cells = "| connections opened at the best point |"
    for (k = 1; k <= nclients; k++)
        cells = cells (top_point[k] ? sprintf(" %s for %s requests |",
                                              grouped(jget(line[top_point[k]], "connections")),
                                              grouped(jget(line[top_point[k]], "requests"))) \
                                    : " - |")
    print cells
    cells = "| automatic retry |"
    for (k = 1; k <= nclients; k++)
        cells = cells (order[k] ~ /^direct/ ? " by hand |" : " built in |")
    print cells

    print ""
    print "The anthropic dialect, parley and the official SDK side by side (a " \
          "server answering after " jget(line[1], "latency_ms") " ms):"
    print ""
    table_http_side()

    b = best_point("ceiling", "native")
    c = best_point("ceiling", "anthropic")
    idle = jget(memory, "idle_rss_bytes_per_session")
    print ""
    printf "Client CPU at the throughput ceiling (a server answering at once): %s " \
           "us per request on the native protocol, %s us over HTTP/SSE",
           b ? sprintf("%.1f", cpu_us_per_request(line[b])) : "-",
           c ? sprintf("%.1f", cpu_us_per_request(line[c])) : "-"
    b = best_point("ceiling", "sdk")
    if (b)
        printf ", %.0f us with the official SDK", cpu_us_per_request(line[b])
    printf "%s.\n", idle != "" ? sprintf("; an idle session costs %s bytes", grouped(idle)) : ""
}

function readme_range(    i, lo, hi) {
    for (i = 1; i <= n; i++)
        if (scenario[i] == "classic") {
            if (!lo || at_once[i] + 0 < lo)
                lo = at_once[i] + 0
            if (at_once[i] + 0 > hi)
                hi = at_once[i] + 0
        }
    return grouped(lo) " to " grouped(hi)
}

# The results of one bench_connections run, split into result[1..count].
function connection_results(l,    body) {
    body = substr(l, index(l, "\"results\":[") + 11)
    return split(body, result, /\},\{/)
}

function table_connections(    r, k, nres, m, lat, c, per, floor_ok, any_floor, best, best_m,
                               best_c, top, needed, machine_bound, bound_runs) {
    best = 0
    for (r = 1; r <= nconn; r++) {
        m = jnum(conn_line[r], "inflight")
        lat = jnum(conn_line[r], "latency_ms")
        nres = connection_results(conn_line[r])
        top = 0
        any_floor = 0
        for (k = 1; k <= nres; k++) {
            c = jnum(result[k], "connections")
            per = int((m + c - 1) / c)
            floor_ok = jnum(result[k], "p50_ms") <= lat + p50_slack_ms &&
                       jnum(result[k], "p99_ms") <= lat * p99_factor &&
                       jnum(result[k], "failed") + jnum(result[k], "refused") == 0
            if (floor_ok)
                any_floor = 1
            if (floor_ok && per > best) {
                best = per
                best_m = m
                best_c = c
            }
            if (jnum(result[k], "throughput") > top)
                top = jnum(result[k], "throughput")
        }
        needed = m * 1000 / lat
        if (!any_floor && top < 0.9 * needed && ++bound_runs)
            machine_bound = machine_bound sprintf("With %s in flight no connection " \
                "count stayed at the floor: that takes %s / %d ms = %s requests a " \
                "second, and the machine carried at most %s (client and server sharing " \
                "its CPUs). The latency there is the number in flight divided by the " \
                "throughput the machine managed (Little's law), whatever the connection " \
                "count.\n\n", grouped(m), grouped(m), lat,
                grouped(needed), grouped(top))
    }
    printf "**Reading** (generated from the runs above). At the floor (p50 within %d ms " \
           "of the server's latency, p99 within %d %% of it, nothing failed), ",
           p50_slack_ms, (p99_factor - 1) * 100
    if (best)
        printf "one connection carried up to %s requests in flight (the run with %s in " \
               "flight, over %s connection%s).\n\n", grouped(best), grouped(best_m),
               best_c, best_c == 1 ? "" : "s"
    else
        printf "no configuration stayed: each had a higher latency.\n\n"
    printf "%s", machine_bound
    printf "The sizing rule assumes %d requests in flight per connection by default " \
           "(`sizing.inflight.per.connection`): ", 500
    if (best >= 500)
        printf "on this machine that holds with room to spare, %s per connection " \
               "stayed at the floor. What the default guards against, many requests " \
               "stalled behind one lost packet on a real network, loopback cannot show.\n",
               grouped(best)
    else if (bound_runs == nconn)
        printf "this run cannot tell, as the machine carried none of the loads it " \
               "measured at any connection count.\n"
    else
        printf "this run did not show that it holds: no configuration with 500 or more " \
               "in flight per connection stayed at the floor.\n"
}

# A target's row: scenario, target, what was measured, met or not.
function target(sc, what, measured, met) {
    printf "| %s | %s | %s | %s |\n", sc, what, measured, met ? "yes" : "**no**"
}

# Issue 16's targets of client CPU per request on the HTTP path, at 200
# and 1,000 conversations at once (one run each here, not a median of 3),
# with what libcurl alone (`floor`, tests/bench/curl_floor) spent on the
# same load: the least any client built on it can.
function http_targets(client, floor, label, bound,    k, m, i, f, measured, met, ran_any) {
    m = concurrencies("http")
    measured = ""
    met = 1
    ran_any = 0
    for (k = 1; k <= m; k++) {
        i = point_of("http", client, list[k])
        f = point_of("http", floor, list[k])
        measured = measured (measured == "" ? "" : "; ") sprintf("%s at %s at once%s",
                   i ? sprintf("%.1f us", cpu_us_per_request(line[i])) : "not measured",
                   grouped(list[k]),
                   f ? sprintf(" (libcurl alone: %.1f us)", cpu_us_per_request(line[f])) : "")
        if (i) {
            ran_any = 1
            met = met && cpu_us_per_request(line[i]) <= bound &&
                  jnum(line[i], "errors") + jnum(line[i], "mismatches") == 0
        } else
            met = 0
    }
    target("5 HTTP", sprintf("anthropic dialect over %s: client CPU <= %d us per request, " \
                             "without errors", label, bound),
           ran_any ? measured " (one run each)" : "not measured", ran_any && met)
}

# Issue 16's target of memory per request in flight over HTTP/2.
function http_memory_target(    per, floor) {
    per = jget(http2_memory, "inflight_rss_bytes_per_request")
    floor = jget(http2_floor_memory, "rss_bytes_per_transfer")
    target("5 HTTP", "anthropic dialect over HTTP/2 with TLS: at most 16 KB (16,384 bytes) " \
                     "of RSS per request in flight",
           per != "" ? sprintf("%s bytes (%s in flight)%s", grouped(per),
                               grouped(jget(http2_memory, "inflight")),
                               floor != "" ? sprintf("; libcurl alone: %s bytes, its " \
                                                     "connections' share included",
                                                     grouped(floor)) : "") \
                     : "not measured",
           per != "" && per + 0 <= 16384)
}

# ---- sessions in memory and in a session store (issue 15) ------------------

function table_store(    k, m, a, b) {
    print "| at once | sessions in | requests | errors | replies/s | p50 ms | p99 ms " \
          "| client CPU us/request | client RSS MB |"
    print "|---:|---|---:|---:|---:|---:|---:|---:|---:|"
    m = concurrencies("store")
    for (k = 1; k <= m; k++) {
        a = point_of("store", "native", list[k])
        b = point_of("store", "native-store", list[k])
        store_row(a, "memory")
        store_row(b, "Redis")
    }
}

function store_row(i, where,    l) {
    if (!i)
        return
    l = line[i]
    printf "| %s | %s | %s | %s | %s | %s | %s | %.1f | %s |\n", grouped(at_once[i]), where,
           grouped(jget(l, "requests")), grouped(jget(l, "errors") + jget(l, "mismatches")),
           grouped(good_rps(l)), ms(jget(l, "lat_ms_p50")), ms(jget(l, "lat_ms_p99")),
           cpu_us_per_request(l), jget(l, "max_rss_mb")
}

# Issue 15's targets: with the sessions in Redis, replies/s within 10 % of
# memory's and p50 within 2 ms of it.
function store_targets(    k, m, a, b, ratio, delta) {
    m = concurrencies("store")
    for (k = 1; k <= m; k++) {
        a = point_of("store", "native", list[k])
        b = point_of("store", "native-store", list[k])
        if (!a || !b) {
            target("6 store", sprintf("%s at once: sessions in Redis measured against memory",
                                      grouped(list[k])), "not measured", 0)
            continue
        }
        ratio = good_rps(line[b]) / good_rps(line[a])
        delta = jnum(line[b], "lat_ms_p50") - jnum(line[a], "lat_ms_p50")
        target("6 store", sprintf("%s at once: replies/s in Redis within 10 %% of memory's",
                                  grouped(list[k])),
               sprintf("%s/s against %s/s (%.1f %%)", grouped(good_rps(line[b])),
                       grouped(good_rps(line[a])), (ratio - 1) * 100), ratio >= 0.9)
        target("6 store", sprintf("%s at once: p50 in Redis within +2 ms of memory's",
                                  grouped(list[k])),
               sprintf("%s ms against %s ms (%+.2f ms)", ms(jget(line[b], "lat_ms_p50")),
                       ms(jget(line[a], "lat_ms_p50")), delta), delta <= 2)
        target("6 store", sprintf("%s at once: no errors with the sessions in Redis",
                                  grouped(list[k])),
               sprintf("%s errors and mismatches",
                       grouped(jnum(line[b], "errors") + jnum(line[b], "mismatches"))),
               jnum(line[b], "errors") + jnum(line[b], "mismatches") == 0)
    }
}

function table_targets(    i, l, within, best, measured, req, bad, base, ratio, b, idle) {
    print "| scenario | target | measured | met |"
    print "|---|---|---|---|"

    within = 0
    for (i = 1; i <= n; i++) {
        l = line[i]
        if (scenario[i] == "classic" && who[i] == "native" && ran[i] &&
            jnum(l, "lat_ms_p50") <= jnum(l, "latency_ms") + p50_slack_ms &&
            jnum(l, "lat_ms_p99") <= jnum(l, "latency_ms") * p99_factor &&
            jnum(l, "errors") + jnum(l, "mismatches") == 0 &&
            (!within || good_rps(l) > good_rps(line[within])))
            within = i
    }
    if (within)
        measured = sprintf("at most %s/s within those bounds (%s at once: p50 %s ms, " \
                           "p99 %s ms)", grouped(good_rps(line[within])),
                           grouped(at_once[within]), ms(jget(line[within], "lat_ms_p50")),
                           ms(jget(line[within], "lat_ms_p99")))
    else
        measured = "no point within those bounds"
    best = best_point("classic", "native")
    if (best)
        measured = measured sprintf("; at most %s/s at any latency (%s at once: p50 %s ms, " \
                                    "p99 %s ms)", grouped(good_rps(line[best])),
                                    grouped(at_once[best]), ms(jget(line[best], "lat_ms_p50")),
                                    ms(jget(line[best], "lat_ms_p99")))
    target("1 classic", "native: at least 20,000 replies/s at p50 <= 205 ms and p99 <= " \
           "250 ms, without errors", measured, within && good_rps(line[within]) >= 20000)

    req = bad = 0
    for (i = 1; i <= n; i++)
        if (scenario[i] == "classic" && who[i] == "native" && ran[i]) {
            req += jget(line[i], "requests")
            bad += jget(line[i], "errors") + jget(line[i], "mismatches")
        }
    target("1 classic", "native: zero errors over the sweep",
           sprintf("%s errors and mismatches in %s requests", grouped(bad), grouped(req)),
           req > 0 && bad == 0)

    base = best_point("classic", "direct-new")
    ratio = best && base ? good_rps(line[best]) / good_rps(line[base]) : 0
    target("1 classic", "native: at least 20 times the replies/s of the new-connection " \
           "baseline (the best point of each)",
           best && base ? sprintf("%.1f times (%s/s against %s/s)", ratio,
                                  grouped(good_rps(line[best])),
                                  grouped(good_rps(line[base]))) : "not measured",
           ratio >= 20)

    b = best_point("ceiling", "native")
    target("2 ceiling", "native: client CPU <= 15 us per request",
           b ? sprintf("%.1f us at the ceiling (%s at once, %s replies/s)",
                       cpu_us_per_request(line[b]), grouped(at_once[b]),
                       grouped(good_rps(line[b]))) : "not measured",
           b && cpu_us_per_request(line[b]) <= 15)
    b = best_point("ceiling", "anthropic")
    target("2 ceiling", "HTTP/SSE (anthropic dialect): client CPU <= 40 us per request",
           b ? sprintf("%.1f us at the ceiling (%s at once, %s replies/s)",
                       cpu_us_per_request(line[b]), grouped(at_once[b]),
                       grouped(good_rps(line[b]))) : "not measured",
           b && cpu_us_per_request(line[b]) <= 40)

    http_targets("anthropic-h2", "curl-floor-h2", "HTTP/2 over TLS", 60)
    http_targets("anthropic", "curl-floor", "HTTP/1.1", 80)
    http_memory_target()
    store_targets()

    idle = jget(memory, "idle_rss_bytes_per_session")
    target("3 memory", "at most 2 KB (2,048 bytes) of RSS per idle session",
           idle != "" ? sprintf("%s bytes (%s idle sessions)", grouped(idle),
                                grouped(jget(memory, "sessions"))) : "not measured",
           idle != "" && idle + 0 <= 2048)
}

END {
    if (table == "plot") table_plot()
    else if (table == "range") table_range()
    else if (table == "classic") table_classic()
    else if (table == "scenario1") table_scenario1()
    else if (table == "ceiling") table_ceiling()
    else if (table == "retry") table_retry()
    else if (table == "http") table_http()
    else if (table == "http_side") table_http_side()
    else if (table == "store") table_store()
    else if (table == "readme") table_readme()
    else if (table == "connections") table_connections()
    else if (table == "targets") table_targets()
    else {
        print "tables.awk: unknown table \"" table "\"" > "/dev/stderr"
        exit 2
    }
}
