/* SPDX-License-Identifier: GPL-2.0-or-later */
/* hung-bus: a "system bus" that accepts connections and never answers, as a wedged dbus-daemon does. Listens on
 * the unix socket PATH, holds every connection open, reads and discards what it is sent. Prints "ready" once
 * listening; runs until killed. */
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char *argv[]) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        struct pollfd fds[64];
        nfds_t n = 1;
        char buf[4096];

        if (argc != 2 || strlen(argv[1]) >= sizeof(sa.sun_path)) {
                fprintf(stderr, "usage: hung-bus PATH\n");
                return 2;
        }
        strcpy(sa.sun_path, argv[1]);
        unlink(argv[1]);
        int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0 || bind(s, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(s, 16) < 0) {
                perror(argv[1]);
                return 1;
        }
        printf("ready\n");
        fflush(stdout);
        fds[0] = (struct pollfd){.fd = s, .events = POLLIN};
        for (;;) {
                if (poll(fds, n, -1) < 0)
                        continue;
                if ((fds[0].revents & POLLIN) && n < 64) {
                        int c = accept4(s, NULL, NULL, SOCK_CLOEXEC);
                        if (c >= 0)
                                fds[n++] = (struct pollfd){.fd = c, .events = POLLIN};
                }
                for (nfds_t i = 1; i < n; i++)
                        if (fds[i].revents & (POLLIN | POLLHUP) && read(fds[i].fd, buf, sizeof(buf)) <= 0) {
                                close(fds[i].fd);
                                fds[i--] = fds[--n];
                        }
        }
}
