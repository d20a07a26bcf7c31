#include "mem_probe.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The value in kB of the /proc/self/status line starting with `key`. */
static long status_kib(const char *text, const char *key)
{
    const char *line = strstr(text, key);
    return line ? strtol(line + strlen(key), NULL, 10) : -1;
}

/* malloc_info() writes one <heap nr="..."> element per arena. */
static int count_arenas(void)
{
    char *xml = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&xml, &len);
    if (!f)
        return -1;
    malloc_info(0, f);
    fclose(f);
    int n = 0;
    for (const char *p = xml; (p = strstr(p, "<heap nr=")); p++)
        n++;
    free(xml);
    return n;
}

void mem_sample_take(mem_sample *s)
{
    /* The arena count first: malloc_info's own buffer must not be in the
     * figures below. */
    s->arenas = count_arenas();
    struct mallinfo2 mi = mallinfo2();
    s->heap_in_use = mi.uordblks + mi.hblkhd;
    s->heap_held = mi.arena + mi.hblkhd;

    char text[4096];
    size_t n = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        n = fread(text, 1, sizeof(text) - 1, f);
        fclose(f);
    }
    text[n] = '\0';
    s->rss_kib = status_kib(text, "\nVmRSS:");
    s->anon_kib = status_kib(text, "\nRssAnon:");
    s->file_kib = status_kib(text, "\nRssFile:");
    s->hwm_kib = status_kib(text, "\nVmHWM:");
}

int mem_peak_reset(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f)
        return -1;
    int ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}
