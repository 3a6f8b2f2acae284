// tests/test_bpfload.py: a small program loaded through backends/bpfload.py. It adds the
// bytes every send of the process whose tgid is in target[0] returned to sent[tgid];
// `hash` and `lru` exist for the map operations only.
BPF_ARRAY(target, u32, 2);
BPF_HASH(sent, u32, u64, 64);
BPF_HASH(hash, u32, u64, 4096);
BPF_TABLE("lru_hash", u64, u64, lru, 4096);

TRACEPOINT_PROBE(sock, sock_send_length)
{
    int slot = 0;
    u32 *want = target.lookup(&slot);
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (!want || *want != tgid || args->ret <= 0)
        return 0;
    u64 zero = 0;
    u64 *total = sent.lookup_or_try_init(&tgid, &zero);
    if (total)
        __sync_fetch_and_add(total, args->ret);
    return 0;
}
