/* SPDX-License-Identifier: GPL-2.0-or-later */
/* tun-holder: creates TUN devices by name, brings them up and holds them until SIGTERM, like a VPN daemon.
 * Prints "ready" once every device exists, so a test can wait for it. */
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char *argv[]) {
        int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (argc < 2 || sock < 0) {
                fprintf(stderr, "usage: tun-holder NAME...\n");
                return 2;
        }
        for (int i = 1; i < argc; i++) {
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
