/*
 * `parley bench`: a load generator on the public API. It holds N
 * conversations at once against an endpoint answering with the echo model
 * (the reference server), checks every reply, and prints one JSON line of
 * results. See bench_main()'s usage text for the options.
 */
#ifndef PARLEY_BENCH_H
#define PARLEY_BENCH_H

/* The command; argv[0] is "bench". Exit status: 0 when every request got
 * its expected reply, 1 when some failed or differed, 2 on bad usage or
 * when the client cannot be made. */
int bench_main(int argc, char **argv);

#endif
