#include "gateway_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

extern char **environ;

/* The gateway started and not yet stopped, for gateway_kill_leftover(). */
static pid_t leftover;
static char leftover_stderr[64];

/* ---- the gateway process ------------------------------------------------ */

/* Milliseconds left until `deadline` (CLOCK_MONOTONIC), at least 0. */
static int ms_left(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long ms = (deadline->tv_sec - now.tv_sec) * 1000LL +
                   (deadline->tv_nsec - now.tv_nsec) / 1000000;
    return ms > 0 ? (int)ms : 0;
}

/* Reads the child's first stdout line ("listening on ADDR:PORT"), bounded. */
static int read_port(int fd)
{
    char line[128];
    size_t len = 0;
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += HARNESS_WAIT_MS / 1000;
    while (len < sizeof(line) - 1 && !memchr(line, '\n', len)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, ms_left(&deadline)) <= 0)
            return -1;
        ssize_t n = read(fd, line + len, sizeof(line) - 1 - len);
        if (n <= 0)
            return -1; /* the gateway exited */
        len += (size_t)n;
    }
    line[len] = '\0';
    const char *colon = strrchr(line, ':');
    return strncmp(line, "listening on ", 13) || !colon ? -1 : atoi(colon + 1);
}

static void show_stderr(const gateway_proc *g)
{
    FILE *f = fopen(g->stderr_path, "r");
    char line[512];
    if (!f)
        return;
    fprintf(stderr, "---- the gateway's stderr:\n");
    while (fgets(line, sizeof(line), f))
        fputs(line, stderr);
    fprintf(stderr, "----\n");
    fclose(f);
}

void gateway_start(gateway_proc *g, const char *endpoint, ...)
{
    const char *bin = getenv("GATEWAY_BIN") ? getenv("GATEWAY_BIN") : "examples/gateway";
    const char *argv[32] = {bin, "--port", "0", "--threads", "2", "--endpoint", endpoint};
    size_t argc = 7;
    va_list ap;
    va_start(ap, endpoint);
    const char *arg;
    while ((arg = va_arg(ap, const char *)) && argc < 31)
        argv[argc++] = arg;
    va_end(ap);
    argv[argc] = NULL;

    int out[2];
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    snprintf(g->stderr_path, sizeof(g->stderr_path), "/tmp/gateway-stderr-XXXXXX");
    int err_fd = mkstemp(g->stderr_path);
    assert_true(err_fd >= 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err_fd, STDERR_FILENO);
    int rc = posix_spawn(&g->pid, bin, &actions, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    close(err_fd);
    if (rc != 0)
        fail_msg("cannot run %s: %s", bin, strerror(rc));
    leftover = g->pid;
    memcpy(leftover_stderr, g->stderr_path, sizeof(leftover_stderr));
    g->port = read_port(out[0]);
    close(out[0]);
    if (g->port <= 0) {
        show_stderr(g);
        fail_msg("the gateway did not print its port");
    }
}

int gateway_stop(gateway_proc *g)
{
    /* A pidfd turns "the child exited" into something poll() can await
     * with a bound. */
    int pidfd = (int)syscall(SYS_pidfd_open, g->pid, 0);
    assert_true(pidfd >= 0);
    leftover = 0;
    kill(g->pid, SIGTERM);
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    int ready = poll(&p, 1, HARNESS_WAIT_MS);
    close(pidfd);
    if (ready <= 0) {
        kill(g->pid, SIGKILL);
        waitpid(g->pid, NULL, 0);
        show_stderr(g);
        unlink(g->stderr_path);
        fail_msg("the gateway did not stop within %d ms of SIGTERM", HARNESS_WAIT_MS);
    }
    int status;
    assert_int_equal(waitpid(g->pid, &status, 0), g->pid);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (code != 0)
        show_stderr(g);
    unlink(g->stderr_path);
    return code;
}

void gateway_kill_leftover(void)
{
    if (leftover > 0) {
        kill(leftover, SIGKILL);
        waitpid(leftover, NULL, 0);
        unlink(leftover_stderr);
    }
    leftover = 0;
}

/* ---- waiting for the first bytes ------------------------------------------ */

void first_bytes_init(first_bytes *f)
{
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cond, NULL);
    f->arrived = false;
}

void first_bytes_destroy(first_bytes *f)
{
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->lock);
}

bool first_bytes_wait(first_bytes *f)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += HARNESS_WAIT_MS / 1000;
    pthread_mutex_lock(&f->lock);
    while (!f->arrived && pthread_cond_timedwait(&f->cond, &f->lock, &deadline) == 0)
        ;
    bool arrived = f->arrived;
    pthread_mutex_unlock(&f->lock);
    return arrived;
}

/* ---- HTTP calls ------------------------------------------------------------ */

typedef struct transfer {
    const http_call *call;
    http_result *result;
    size_t uploaded; /* chunked uploads: bytes handed to curl so far */
} transfer;

static size_t on_body(char *data, size_t size, size_t n, void *opaque)
{
    transfer *t = opaque;
    http_result *r = t->result;
    size_t len = size * n;
    size_t room = sizeof(r->body) - 1 - r->body_len;
    if (len > room)
        r->body_overflow = true;
    memcpy(r->body + r->body_len, data, len < room ? len : room);
    r->body_len += len < room ? len : room;
    r->body[r->body_len] = '\0';
    first_bytes *f = t->call->started;
    if (f && len) {
        pthread_mutex_lock(&f->lock);
        f->arrived = true;
        pthread_cond_broadcast(&f->cond);
        pthread_mutex_unlock(&f->lock);
    }
    return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *opaque)
{
    transfer *t = opaque;
    size_t len = size * n;
    static const char te[] = "transfer-encoding: chunked";
    if (len >= sizeof(te) - 1 && !strncasecmp(data, te, sizeof(te) - 1))
        t->result->chunked = true;
    return len;
}

/* Chunked uploads: the body in pieces of at most 1000 bytes. */
static size_t on_upload(char *buf, size_t size, size_t n, void *opaque)
{
    transfer *t = opaque;
    size_t left = t->call->body_len - t->uploaded;
    size_t len = size * n < 1000 ? size * n : 1000;
    if (len > left)
        len = left;
    memcpy(buf, t->call->body + t->uploaded, len);
    t->uploaded += len;
    return len;
}

void http_do(const http_call *call, http_result *result)
{
    memset(result, 0, sizeof(*result));
    transfer t = {.call = call, .result = result};
    char url[512];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", call->port, call->path);
    CURL *h = curl_easy_init();
    /* No "Expect: 100-continue": the body goes at once. */
    struct curl_slist *headers = curl_slist_append(NULL, "Expect:");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)HARNESS_WAIT_MS);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
    if (call->method && strcmp(call->method, "POST")) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, call->method);
    } else if (call->chunked_upload) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_upload);
        curl_easy_setopt(h, CURLOPT_READDATA, &t);
        headers = curl_slist_append(headers, "Transfer-Encoding: chunked");
    } else {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, call->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)call->body_len);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    result->code = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &result->status);
    curl_easy_cleanup(h);
    curl_slist_free_all(headers);
}
