#include "bench_server.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The child: serve until the parent closes its end of stop_fd (also when
 * the parent dies), then stop. Reports the port, or 0 on failure, on
 * port_fd. */
static void child_main(int port_fd, int stop_fd, const pl_refserver_opts *opts)
{
    char err[256];
    pl_refserver *srv = pl_refserver_start(opts, err, sizeof(err));
    int port = srv ? pl_refserver_port(srv) : 0;
    if (!srv)
        fprintf(stderr, "bench server: %s\n", err);
    if (write(port_fd, &port, sizeof(port)) != (ssize_t)sizeof(port) || !srv)
        _exit(1);
    char byte;
    ssize_t r;
    while ((r = read(stop_fd, &byte, 1)) > 0 || (r < 0 && errno == EINTR))
        ;
    pl_refserver_stop(srv);
    _exit(0);
}

int bench_server_fork(bench_server *srv, const pl_refserver_opts *opts, char *err,
                      size_t err_size)
{
    int port_pipe[2], stop_pipe[2];
    if (pipe(port_pipe) != 0) {
        snprintf(err, err_size, "pipe: %s", strerror(errno));
        return -1;
    }
    if (pipe(stop_pipe) != 0) {
        snprintf(err, err_size, "pipe: %s", strerror(errno));
        close(port_pipe[0]);
        close(port_pipe[1]);
        return -1;
    }
    fflush(NULL); /* nothing buffered may be written twice */
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, err_size, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        close(port_pipe[0]);
        close(stop_pipe[1]);
        child_main(port_pipe[1], stop_pipe[0], opts);
    }
    close(port_pipe[1]);
    close(stop_pipe[0]);
    int port = 0;
    ssize_t got = read(port_pipe[0], &port, sizeof(port));
    close(port_pipe[0]);
    srv->pid = pid;
    srv->stop_fd = stop_pipe[1];
    srv->port = port;
    if (got != (ssize_t)sizeof(port) || port <= 0) {
        snprintf(err, err_size, "the reference server did not start");
        bench_server_stop(srv);
        return -1;
    }
    return 0;
}

void bench_server_stop(bench_server *srv)
{
    if (srv->stop_fd >= 0)
        close(srv->stop_fd);
    srv->stop_fd = -1;
    if (srv->pid > 0)
        waitpid(srv->pid, NULL, 0);
    srv->pid = 0;
}
