// SPDX-License-Identifier: (GPL-2.0 OR MIT)
// A "foreign" XDP program for tests/e2e_xsk.rs: passes everything. Its name (xdp_pass) is not
// xvs_filter, so xvs must refuse to replace it.
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] SEC("license") = "Dual MIT/GPL";
