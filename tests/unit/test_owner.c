/*
 * The thread-ownership checks (src/owner.h): the owner passes, another
 * thread aborts, anyone passes before the first owner, and ownership
 * handed over after a join moves the check to the new owner.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "owner.h"

static void *check_owner(void *arg)
{
    PL_ASSERT_OWNER((pl_owner *)arg);
    return NULL;
}

static void *take_owner(void *arg)
{
    pl_owner_take(arg);
    return NULL;
}

/* Runs check_owner inside a child process, on a new thread or on the
 * child's only thread (the copy of the caller); returns the signal that
 * ended the child, 0 when it exited normally. */
static int check_in_child(pl_owner *o, bool new_thread)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* The failed assertion's message would look like a test failure. */
        if (!freopen("/dev/null", "w", stderr))
            _exit(2);
        if (!new_thread) {
            check_owner(o);
            _exit(0);
        }
        pthread_t t;
        if (pthread_create(&t, NULL, check_owner, o) != 0)
            _exit(2);
        pthread_join(t, NULL);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status))
        return WTERMSIG(status);
    assert_int_equal(WEXITSTATUS(status), 0);
    return 0;
}

static void anyone_before_the_first_owner(void **state)
{
    (void)state;
    pl_owner o = {0};
    PL_ASSERT_OWNER(&o);
    assert_int_equal(check_in_child(&o, true), 0);
}

static void only_the_owner_after(void **state)
{
    (void)state;
    pl_owner o = {0};
    pl_owner_take(&o);
    PL_ASSERT_OWNER(&o);
    assert_int_equal(check_in_child(&o, true), SIGABRT);
}

/* As the I/O thread's structures: the thread takes them, and after its
 * join the thread that stops it owns them again. */
static void handed_over_at_a_join(void **state)
{
    (void)state;
    pl_owner o = {0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, take_owner, &o), 0);
    pthread_join(t, NULL);
    /* Still the gone thread's. (Checked from this thread's copy: a new
     * thread could reuse the joined one's identity.) */
    assert_int_equal(check_in_child(&o, false), SIGABRT);
    pl_owner_take(&o);
    PL_ASSERT_OWNER(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(anyone_before_the_first_owner),
        cmocka_unit_test(only_the_owner_after),
        cmocka_unit_test(handed_over_at_a_join),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
