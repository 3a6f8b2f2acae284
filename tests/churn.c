/* Process churn for the fault tests and the soak bench: many short-lived talkers.
 *
 *   churn RATE SECONDS BYTES NAME
 *
 * Built and run by tests/churn.py (see there). One parent runs a loopback TCP server
 * on a thread and forks RATE children per second for SECONDS; each child names
 * itself NAME (its kernel comm), connects, sends BYTES of payload and exits at once.
 * C, because a Python parent on two busy cores could not fork 300 a second. When done
 * the parent prints one JSON line: {"pid", "children", "failed", "child_sent",
 * "server_recv"}, counted from send/recv return values (a child that failed to send
 * everything exits non-zero and is not counted). Only loopback is used.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int listener;
static long long server_recv;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Accept and drain connections until the listener is shut down; count the bytes. */
static void *serve(void *unused) {
    static char buf[65536];
    (void)unused;
    for (;;) {
        int conn = accept(listener, NULL, NULL);
        if (conn < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return NULL;
        }
        ssize_t n;
        while ((n = recv(conn, buf, sizeof buf, 0)) > 0)
            __atomic_add_fetch(&server_recv, n, __ATOMIC_RELAXED);
        close(conn);
    }
}

/* The forked child: only async-signal-safe calls (the parent has a thread). */
static void child(const struct sockaddr_in *addr, const char *name, const char *payload,
                  size_t len) {
    prctl(PR_SET_NAME, name, 0, 0, 0);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0 || connect(s, (const struct sockaddr *)addr, sizeof *addr) != 0)
        _exit(1);
    size_t sent = 0;
    while (sent < len) {
        ssize_t n = send(s, payload + sent, len - sent, 0);
        if (n <= 0)
            _exit(1);
        sent += (size_t)n;
    }
    close(s);
    _exit(0);
}

static void reap(int block, long *ok, long *failed) {
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, block ? 0 : WNOHANG)) > 0) {
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
            ++*ok;
        else
            ++*failed;
    }
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: churn RATE SECONDS BYTES NAME\n");
        return 2;
    }
    double rate = atof(argv[1]), seconds = atof(argv[2]);
    size_t len = (size_t)atol(argv[3]);
    const char *name = argv[4];
    char *payload = malloc(len ? len : 1);
    memset(payload, 'c', len);

    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof addr;
    listener = socket(AF_INET, SOCK_STREAM, 0);
    if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen(listener, 4096) != 0 || getsockname(listener, (struct sockaddr *)&addr, &alen)) {
        perror("churn: listen");
        return 1;
    }
    pthread_t server;
    pthread_create(&server, NULL, serve, NULL);

    long started = 0, ok = 0, failed = 0;
    double begin = now(), elapsed;
    while ((elapsed = now() - begin) < seconds) {
        while (started < (long)(elapsed * rate) + 1) {
            pid_t pid = fork();
            if (pid == 0)
                child(&addr, name, payload, len);
            if (pid < 0) {
                ++failed;
                break;
            }
            ++started;
        }
        reap(0, &ok, &failed);
        usleep(1000);
    }
    reap(1, &ok, &failed);
    usleep(500000); /* the server drains the last connections */
    shutdown(listener, SHUT_RDWR);
    pthread_join(server, NULL);
    printf("{\"pid\": %d, \"children\": %ld, \"failed\": %ld, \"child_sent\": %lld, "
           "\"server_recv\": %lld}\n",
           getpid(), ok, failed, (long long)ok * (long long)len,
           __atomic_load_n(&server_recv, __ATOMIC_RELAXED));
    return 0;
}
