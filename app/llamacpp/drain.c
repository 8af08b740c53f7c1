/*
 * llama-drain: PID 1 of the llama.cpp image. Runs llama-server and lets it finish what it serves on SIGTERM.
 *
 * llama-server stops at once on SIGTERM and cuts the requests it is generating. Kubernetes sends SIGTERM after
 * the pod's preStop hook, once the endpoints no longer route new requests to it, so in-flight answers should
 * complete. On SIGTERM this waits until the server's /metrics show no request processing or deferred (at most
 * DRAIN_SECONDS, default 25), then passes SIGTERM on and exits with the server's status. SIGINT is passed on at
 * once; zombies are reaped, as PID 1 must.
 *
 * Usage: llama-drain /path/to/llama-server [ARGS...]
 * The port polled is the server's: --port N, else LLAMA_ARG_PORT, else 8080 (llama-server's order).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got_term, got_int;

static void on_signal(int sig) {
    if (sig == SIGTERM)
        got_term = 1;
    else
        got_int = 1;
}

/* The value of a metric line "NAME VALUE" in text, or -1 when absent. */
static double metric(const char *text, const char *name) {
    size_t n = strlen(name);
    for (const char *line = text; line != NULL; line = strchr(line, '\n')) {
        line += *line == '\n';
        if (strncmp(line, name, n) == 0 && line[n] == ' ')
            return strtod(line + n + 1, NULL);
    }
    return -1;
}

/*
 * Requests processing plus deferred, from GET /metrics on 127.0.0.1:port. -1: nothing to wait for (no server
 * listening, or an answer without llama.cpp's metrics: started without --metrics). A server that does not answer
 * within the timeout counts as busy: /metrics waits for its main loop, which a long prompt batch can hold.
 */
static double busy(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval timeout = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    static char buf[1 << 16];
    size_t len = 0;
    ssize_t got = -1;
    const char *req = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (send(fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req))
        while (len < sizeof buf - 1 && (got = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
            len += (size_t)got;
    close(fd);
    if (got < 0)
        return 1; /* timed out: busy */
    buf[len] = '\0';
    double processing = metric(buf, "llamacpp:requests_processing");
    double deferred = metric(buf, "llamacpp:requests_deferred");
    return processing >= 0 && deferred >= 0 ? processing + deferred : -1;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: llama-drain SERVER [ARGS...]\n");
        return 2;
    }
    const char *port_env = getenv("LLAMA_ARG_PORT");
    int port = port_env ? atoi(port_env) : 8080;
    for (int i = 2; i + 1 < argc; i++)
        if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
    const char *drain_env = getenv("DRAIN_SECONDS");
    double drain_seconds = drain_env ? atof(drain_env) : 25;

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    pid_t server = fork();
    if (server < 0) {
        perror("llama-drain: fork");
        return 1;
    }
    if (server == 0) {
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        execv(argv[1], argv + 1);
        perror("llama-drain: exec");
        _exit(127);
    }

    int status = 0, draining = 0;
    double deadline = 0;
    for (;;) {
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid == server)
            break;
        if (pid > 0)
            continue; /* an orphan reaped */
        if (got_int) {
            got_int = 0;
            kill(server, SIGINT);
        }
        if (got_term && !draining) {
            draining = 1;
            deadline = now() + drain_seconds;
            fprintf(stderr, "llama-drain: SIGTERM: draining in-flight requests (at most %gs)\n", drain_seconds);
        }
        if (draining == 1) {
            double left = busy(port);
            if (left <= 0 || now() >= deadline) {
                const char *why = left == 0 ? "idle" : left < 0 ? "no /metrics answer" : "deadline reached";
                fprintf(stderr, "llama-drain: drained (%s); exiting\n", why);
                kill(server, SIGTERM);
                draining = 2;
            }
        }
        usleep(draining == 1 ? 200000 : 50000);
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    /* The server died of a signal: the SIGTERM passed on counts as a clean stop. */
    return WTERMSIG(status) == SIGTERM && draining ? 0 : 128 + WTERMSIG(status);
}
