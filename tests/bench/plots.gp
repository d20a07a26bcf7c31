# The plots of docs/benchmarks.md's scenario 1, drawn by tests/bench/plots.sh,
# which sets: dir (the .dat files: concurrency, replies/s, p50, p99 per
# line, one file per client), out (where the PNGs go) and latency (the
# server's, in ms).
clients = "direct-new direct-keepalive anthropic native sdk"
names = "'direct, new connection each' 'direct, kept alive' \
'parley, anthropic dialect (HTTP/SSE)' 'parley, native (WebSocket)' \
'official Anthropic SDK for Node (HTTP/1.1)'"
nclients = words(clients)
file(i) = sprintf("%s/plot-%s.dat", dir, word(clients, i))

set terminal pngcairo size 900,560 font "sans,10"
set logscale x 10
set logscale y 10
set grid xtics ytics mxtics mytics lc rgb "#dddddd"
set key top left
set xlabel "conversations at once"
set xrange [*:*]
set linetype 1 lc rgb "#d62728" lw 2 pt 7
set linetype 2 lc rgb "#ff7f0e" lw 2 pt 5
set linetype 3 lc rgb "#1f77b4" lw 2 pt 9
set linetype 4 lc rgb "#2ca02c" lw 2 pt 11
set linetype 5 lc rgb "#9467bd" lw 2 pt 13

# Little's law: N conversations each waiting `latency` per request make at
# most N / latency requests a second.
set output out . "/bench-throughput.png"
set title sprintf("Replies per second, server latency %d ms, server and clients on one machine", \
                 latency)
set ylabel "replies per second (matching, errors excluded)"
plot for [i = 1:nclients] file(i) using 1:2 with linespoints lt i title word(names, i), \
     1000.0 * x / latency with lines dt 3 lc rgb "#888888" \
       title sprintf("bound: N / %d ms", latency)

set output out . "/bench-latency.png"
set title sprintf("Latency, send to the end of the reply; server latency %d ms", latency)
set ylabel "milliseconds (solid: p50, dashed: p99)"
set yrange [latency * 0.9 : *]
plot for [i = 1:nclients] file(i) using 1:3 with linespoints lt i title word(names, i), \
     for [i = 1:nclients] file(i) using 1:4 with linespoints lt i dt 2 notitle, \
     latency with lines dt 3 lc rgb "#888888" title sprintf("floor: %d ms", latency)
