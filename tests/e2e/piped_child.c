/* A program the test talks to while it runs (piped_child.h). */
#include "piped_child.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void piped_child_start(piped_child *c, const char *const *env, char *const *argv)
{
    memset(c, 0, sizeof(*c));
    int in[2], out[2];
    assert_int_equal(pipe2(in, O_CLOEXEC), 0);
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    snprintf(c->err_path, sizeof(c->err_path), "/tmp/parley-child-XXXXXX");
    int err_fd = mkstemp(c->err_path);
    assert_true(err_fd >= 0);
    pid_t parent = getpid();
    c->pid = fork();
    assert_true(c->pid >= 0);
    if (c->pid == 0) {
        /* A child left behind by a failed test must not outlive it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        for (const char *const *e = env; e && *e; e++)
            putenv((char *)*e);
        dup2(in[0], STDIN_FILENO);
        dup2(out[1], STDOUT_FILENO);
        dup2(err_fd, STDERR_FILENO);
        execv(argv[0], argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(err_fd);
    c->in = fdopen(in[1], "w");
    assert_non_null(c->in);
    c->out_fd = out[0];
}

void piped_child_say(piped_child *c, const char *line)
{
    fprintf(c->in, "%s\n", line);
    fflush(c->in);
}

bool piped_child_line(piped_child *c, char *line, size_t size, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        char *nl = memchr(c->pending, '\n', c->pending_len);
        if (nl) {
            size_t n = (size_t)(nl - c->pending);
            snprintf(line, size, "%.*s", (int)n, c->pending);
            c->pending_len -= n + 1;
            memmove(c->pending, nl + 1, c->pending_len);
            return true;
        }
        int64_t left = deadline - now_ms();
        if (left <= 0 || c->pending_len == sizeof(c->pending))
            return false;
        struct pollfd p = {.fd = c->out_fd, .events = POLLIN};
        int rc = poll(&p, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return false;
        ssize_t got = read(c->out_fd, c->pending + c->pending_len,
                           sizeof(c->pending) - c->pending_len);
        if (got <= 0)
            return false;
        c->pending_len += (size_t)got;
    }
}

int piped_child_wait(piped_child *c, int timeout_ms)
{
    /* A pidfd turns "the child exited" into something poll() can await
     * with a bound. */
    int pidfd = (int)syscall(SYS_pidfd_open, c->pid, 0);
    assert_true(pidfd >= 0);
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    int64_t deadline = now_ms() + timeout_ms;
    int rc;
    do {
        int64_t left = deadline - now_ms();
        rc = poll(&p, 1, left > 0 ? (int)left : 0);
    } while (rc < 0 && errno == EINTR);
    close(pidfd);
    if (rc <= 0)
        kill(c->pid, SIGKILL);
    int status;
    waitpid(c->pid, &status, 0);
    c->pid = 0;
    if (rc <= 0)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void piped_child_signal(piped_child *c, int sig)
{
    if (c->pid > 0)
        kill(c->pid, sig);
}

void piped_child_show_stderr(const piped_child *c)
{
    FILE *f = fopen(c->err_path, "r");
    if (!f)
        return;
    char buf[1024];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        fwrite(buf, 1, n, stderr);
    fclose(f);
}

void piped_child_free(piped_child *c)
{
    if (c->pid > 0) {
        kill(c->pid, SIGKILL);
        waitpid(c->pid, NULL, 0);
    }
    if (c->in)
        fclose(c->in);
    if (c->out_fd > 0)
        close(c->out_fd);
    unlink(c->err_path);
}
