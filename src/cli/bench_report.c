#include "bench_report.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_properties.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* VmRSS of this process in KiB; -1 when /proc cannot tell. */
static long long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long long kb = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %lld", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* Open file descriptors of this process (the one reading the directory
 * not counted); -1 when /proc cannot tell. */
static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;
}

/* The integer after "\"key\":" in the document (each key used here occurs
 * once in it, docs/statistics.md); -1 when absent. */
static long long field(const char *json, const char *key)
{
    char quoted[64];
    snprintf(quoted, sizeof(quoted), "\"%s\":", key);
    const char *at = strstr(json, quoted);
    return at ? strtoll(at + strlen(quoted), NULL, 10) : -1;
}

static void on_stats(parley_client_t *client, const char *json, size_t len, void *opaque)
{
    (void)client;
    (void)len;
    bench_report *r = opaque;
    long long done = field(json, "done"), failed = field(json, "failed");
    printf("report t_s=%.0f rss_kb=%lld fds=%ld timers=%lld inflight=%lld done=%lld "
           "failed=%lld\n",
           (double)(now_ns() - r->start_ns) / 1e9, rss_kb(), open_fds(), field(json, "timers"),
           field(json, "outstanding"), done, failed);
    fflush(stdout);
}

bool bench_report_setup(bench_report *r, parley_conf_t *conf, double every_s)
{
    char ms[32];
    snprintf(ms, sizeof(ms), "%.0f", every_s * 1000);
    if (!cli_conf_set(conf, "statistics.interval.ms", ms))
        return false;
    r->start_ns = now_ns();
    parley_conf_set_stats_cb(conf, on_stats, r);
    return true;
}
