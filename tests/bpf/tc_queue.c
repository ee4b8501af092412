// SPDX-License-Identifier: (GPL-2.0 OR MIT)
// The lab's queue steering (scripts/lab steer TAG ROLE IFACE QUEUE): a tc egress program that
// makes every frame leaving IFACE use its TX queue QUEUE (compiled in: -DQUEUE=N). On a veth
// pair the peer receives a frame on the RX queue of the sender's TX queue, so the frames of one
// direction reach the load balancer on one chosen queue, deterministically.
//
// How: the kernel picks the TX queue after the egress hook. A veth has no queue selection of
// its own and the lab sets no XPS map, so for a frame whose socket has not cached a queue yet
// (a forwarded frame has no socket; a socket caches the queue picked for its first frame) the
// kernel hashes, except that a frame with a recorded RX queue (queue_mapping = queue + 1) takes
// that queue (modulo the number of TX queues). Writing QUEUE + 1 therefore selects QUEUE. (The
// skbedit action would say it directly; this kernel is built without it.)
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#define SEC(name) __attribute__((section(name), used))

#ifndef QUEUE
#error "build with -DQUEUE=N: the TX queue to use (scripts/lab steer does)"
#endif

SEC("tc")
int tc_queue(struct __sk_buff *skb)
{
	skb->queue_mapping = QUEUE + 1;
	return TC_ACT_OK;
}

char _license[] SEC("license") = "Dual MIT/GPL";
