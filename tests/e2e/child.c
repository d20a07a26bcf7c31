/* Programs run as a user runs them (child.h). */
#include "child.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixtures.h"

/* How long one child may run before it is killed (and the test fails). */
#define CHILD_SECONDS 60

static void read_file(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, size - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
}

/* Wait for pid, killing it after CHILD_SECONDS; its exit status or -1. */
static int wait_bounded(pid_t pid)
{
    int64_t deadline = fixture_now_ms() + CHILD_SECONDS * 1000;
    int st;
    for (;;) {
        pid_t got = waitpid(pid, &st, WNOHANG);
        if (got == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        if (got < 0 && errno != EINTR)
            return -1;
        if (fixture_now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        fixture_pause_ms(10); /* polling a child: there is nothing to await */
    }
}

void child_run(child_result *r, const char *workdir, const char *input, bool tty,
               const char *const *env, char *const *argv)
{
    char in_path[128], out_path[128], err_path[128];
    snprintf(in_path, sizeof(in_path), "%s/in", workdir);
    snprintf(out_path, sizeof(out_path), "%s/out", workdir);
    snprintf(err_path, sizeof(err_path), "%s/err", workdir);
    FILE *f = fopen(in_path, "w");
    assert_non_null(f);
    fputs(input ? input : "", f);
    fclose(f);

    int master = -1;
    char *slave_name = NULL;
    if (tty) {
        master = posix_openpt(O_RDWR | O_NOCTTY);
        assert_true(master >= 0);
        assert_int_equal(grantpt(master), 0);
        assert_int_equal(unlockpt(master), 0);
        slave_name = ptsname(master);
        assert_non_null(slave_name);
    }
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int in = tty ? open(slave_name, O_RDWR) : open(in_path, O_RDONLY);
        int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in < 0 || out < 0 || err < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 ||
            dup2(err, 2) < 0)
            _exit(126);
        unsetenv("PARLEY_API_KEY");
        unsetenv("ANTHROPIC_API_KEY");
        unsetenv("OPENAI_API_KEY");
        unsetenv("PARLEY_ENDPOINT");
        unsetenv("PARLEY_LOG");
        for (size_t i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        execv(argv[0], argv);
        _exit(127);
    }
    if (tty) {
        /* What a person types: a line, then Ctrl-D on an empty line. */
        const char *typed = input ? input : "";
        assert_int_equal(write(master, typed, strlen(typed)), (ssize_t)strlen(typed));
        assert_int_equal(write(master, "\x04", 1), 1);
    }
    r->status = wait_bounded(pid);
    if (tty)
        close(master);
    read_file(out_path, r->out, sizeof(r->out));
    read_file(err_path, r->err, sizeof(r->err));
}

