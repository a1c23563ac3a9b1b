/* SPDX-License-Identifier: GPL-2.0-or-later */
/* tun-holder: creates TUN devices by name, brings them up and holds them until SIGTERM, like a VPN daemon.
 * Prints "ready" once every device exists, so a test can wait for it. With -d MS it waits MS milliseconds
 * first, as real Type=simple VPN daemons do: their unit is started before their interface exists. */
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char *argv[]) {
        int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), first = 1;
        if (argc > 2 && strcmp(argv[1], "-d") == 0) {
                long ms = strtol(argv[2], NULL, 10);
                struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
                nanosleep(&ts, NULL);
                first = 3;
        }
        if (argc <= first || sock < 0) {
                fprintf(stderr, "usage: tun-holder [-d MS] NAME...\n");
                return 2;
        }
        for (int i = first; i < argc; i++) {
                struct ifreq ifr = {.ifr_flags = IFF_TUN | IFF_NO_PI};
                int fd = open("/dev/net/tun", O_RDWR);
                snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", argv[i]);
                if (fd < 0 || ioctl(fd, TUNSETIFF, &ifr) < 0) {
                        perror(argv[i]);
                        return 1;
                }
                if (ioctl(sock, SIOCGIFFLAGS, &ifr) == 0) {
                        ifr.ifr_flags |= IFF_UP;
                        (void) ioctl(sock, SIOCSIFFLAGS, &ifr);
                }
        }
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigprocmask(SIG_BLOCK, &set, NULL);
        printf("ready\n");
        fflush(stdout);
        int sig;
        sigwait(&set, &sig);
        return 0;
}
