/* SPDX-License-Identifier: GPL-2.0-or-later */
/* tun-inject: holds TUN devices like tests/tun-holder does, and at each SIGUSR1 writes one IPv4/UDP packet into
 * every one of them, so the packet arrives on the device's ingress path (where netdev and inet ingress chains
 * and flowtables hook). Prints "ready" once every device exists and up, "sent N" after each round.
 * The kernel tier's probe uses it to see whether a hook is really attached to a device, not only listed. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_DEVS 16

static uint16_t ip_checksum(const uint8_t *p, size_t len) {
        uint32_t sum = 0;
        for (size_t i = 0; i + 1 < len; i += 2)
                sum += (uint32_t) (p[i] << 8 | p[i + 1]);
        while (sum >> 16)
                sum = (sum & 0xffff) + (sum >> 16);
        return (uint16_t) ~sum;
}

/* 192.0.2.2:4000 -> 192.0.2.1:4001 (TEST-NET-1), 4 bytes of payload; UDP checksum 0 (none). */
static size_t make_packet(uint8_t *pkt) {
        static const uint8_t payload[4] = {'p', 'r', 'b', 'e'};
        size_t len = 20 + 8 + sizeof(payload);
        memset(pkt, 0, len);
        pkt[0] = 0x45;
        pkt[2] = (uint8_t) (len >> 8);
        pkt[3] = (uint8_t) len;
        pkt[8] = 64;
        pkt[9] = 17;
        inet_pton(AF_INET, "192.0.2.2", pkt + 12);
        inet_pton(AF_INET, "192.0.2.1", pkt + 16);
        uint16_t c = ip_checksum(pkt, 20);
        pkt[10] = (uint8_t) (c >> 8);
        pkt[11] = (uint8_t) c;
        uint8_t *udp = pkt + 20;
        udp[0] = 4000 >> 8;
        udp[1] = 4000 & 0xff;
        udp[2] = 4001 >> 8;
        udp[3] = 4001 & 0xff;
        udp[4] = (uint8_t) ((8 + sizeof(payload)) >> 8);
        udp[5] = (uint8_t) (8 + sizeof(payload));
        memcpy(udp + 8, payload, sizeof(payload));
        return len;
}

int main(int argc, char *argv[]) {
        int fds[MAX_DEVS];
        int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (argc < 2 || argc - 1 > MAX_DEVS || sock < 0) {
                fprintf(stderr, "usage: tun-inject NAME... (at most %d)\n", MAX_DEVS);
                return 2;
        }
        for (int i = 1; i < argc; i++) {
                struct ifreq ifr = {.ifr_flags = IFF_TUN | IFF_NO_PI};
                int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
                snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", argv[i]);
                if (fd < 0 || ioctl(fd, TUNSETIFF, &ifr) < 0) {
                        perror(argv[i]);
                        return 1;
                }
                if (ioctl(sock, SIOCGIFFLAGS, &ifr) == 0) {
                        ifr.ifr_flags |= IFF_UP;
                        if (ioctl(sock, SIOCSIFFLAGS, &ifr) < 0) {
                                perror(argv[i]);
                                return 1;
                        }
                }
                fds[i - 1] = fd;
        }
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGUSR1);
        sigprocmask(SIG_BLOCK, &set, NULL);
        printf("ready\n");
        fflush(stdout);
        uint8_t pkt[64];
        size_t len = make_packet(pkt);
        for (;;) {
                int sig;
                if (sigwait(&set, &sig) != 0 || sig != SIGUSR1)
                        return 0;
                int sent = 0;
                for (int i = 0; i < argc - 1; i++) {
                        if (write(fds[i], pkt, len) == (ssize_t) len)
                                sent++;
                        else
                                perror(argv[i + 1]);
                }
                printf("sent %d\n", sent);
                fflush(stdout);
        }
}
