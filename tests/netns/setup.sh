#!/bin/sh
# The network of a namespace made by `unshare -rn` for the multicast tests (tests/netns/README.md):
# loopback up and multicast-capable with 224.0.0.0/4 routed to it (IPv4 discovery), and a veth pair
# without duplicate-address detection whose v0 end carries ff05::/16 (IPv6 discovery). v1 gets an IPv4
# address only so that getaddrinfo's AI_ADDRCONFIG (aiocoap uses it) finds IPv4 configured and resolves
# localhost, as on any host with a network. Then runs "$@".
set -e
sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0
ip link set lo up
ip link set lo multicast on
ip route add 224.0.0.0/4 dev lo
ip link add v0 type veth peer name v1
ip link set v0 up
ip link set v1 up
ip addr add 10.203.0.1/24 dev v1
exec "$@"
