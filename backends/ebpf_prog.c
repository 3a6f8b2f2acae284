// The kernel half of backends/ebpf.py (read its docstring first). bcc compiles this with:
//   PROC_MAX, CONN_MAX  sizes of the two LRU maps (entries with traffic per interval)
//   USE_KPROBES         0: tracepoints sock:sock_{send,recv}_length; 1: kprobe fallback
//   RECV_FLAGS(ctx)     kprobe fallback: the flags argument of tcp/udp recvmsg
//   READ_KERNEL         bpf_probe_read_kernel, or bpf_probe_read before Linux 5.5
//   TCP_READS           1: also count TCP reads that bypass recvmsg (splice), see tcp_rx
//   TCP_COPIED_SEQ, TCP_RCV_NXT, TCP_ICSK_ULP_OPS, TCP_INET_SPORT  offsets in struct
//                       tcp_sock (from BTF, backends/btf.py)

#define NT_AF_UNIX 1
#define NT_AF_INET 2
#define NT_AF_INET6 10
#define NT_AF_KEY 15
#define NT_AF_NETLINK 16
#define NT_AF_ALG 38
#define NT_MSG_PEEK 0x2
#define NT_MSG_ERRQUEUE 0x2000
#define NT_IPPROTO_TCP 6

// The head of the kernel's struct sock_common. Its layout has been stable since Linux
// 3.13 (64-bit kernels with CONFIG_NET_NS and CONFIG_IPV6, as distributions build them).
// We keep our own copy because <net/sock.h> from 6.10+ headers does not compile under
// bcc 0.26; `family` is checked against the tracepoint's before any address is used.
struct sock_head {
    u32 daddr;            // skc_daddr, network order
    u32 rcv_saddr;        // skc_rcv_saddr
    u32 hash;             // skc_hash
    u16 dport;            // skc_dport, network order
    u16 num;              // skc_num: the local port, host order
    u16 family;           // skc_family
    u8 state;             // skc_state
    u8 reuse_bits;        // skc_reuse, skc_reuseport, ...
    int bound_dev_if;     // skc_bound_dev_if
    void *bind_node[2];   // skc_bind_node (struct hlist_node)
    void *prot;           // skc_prot
    void *net;            // skc_net
    u8 v6_daddr[16];      // skc_v6_daddr
    u8 v6_rcv_saddr[16];  // skc_v6_rcv_saddr
};

// Keys carry the generation they were counted in. User space bumps `generation` before
// each read and then drains only entries of earlier generations, keeping the previous
// one for one more read: a program preempted just after reading the old generation may
// still add to it (see ebpf.py, _take).
struct proc_key {
    u32 tgid;
    u32 gen;
};

struct proc_val {
    u64 sent;
    u64 recv;
    char comm[16];  // the kernel's name for the process, taken at its first byte
    u32 leader;     // 1 once comm comes from the main thread (tid == tgid)
    u32 pad;
};

struct conn_key {
    u32 tgid;
    u32 gen;
    u16 family;
    u16 protocol;   // IPPROTO_* for AF_INET/AF_INET6, the ethertype for AF_PACKET
    u16 lport;      // host order
    u16 rport;      // network order
    u8 laddr[16];   // IPv4 in the first 4 bytes; all zero when unknown
    u8 raddr[16];
};

struct conn_val {
    u64 sent;
    u64 recv;
};

BPF_ARRAY(generation, u32, 1);
BPF_TABLE("lru_hash", struct proc_key, struct proc_val, procs, PROC_MAX);
BPF_TABLE("lru_hash", struct conn_key, struct conn_val, conns, CONN_MAX);

// Whether a send/recv call's returned count is payload we count.
static __always_inline int counted(u16 family, int ret, int flags)
{
    if (ret <= 0 || (flags & (NT_MSG_PEEK | NT_MSG_ERRQUEUE)))
        return 0;
    // Local IPC and kernel interfaces, not network traffic.
    return !(family == NT_AF_UNIX || family == NT_AF_NETLINK || family == NT_AF_KEY ||
             family == NT_AF_ALG);
}

#if TCP_READS
// A closed TCP socket that still holds unread data has given its port back (skc_num is
// 0 once tcp_done unhashed it); inet_sport, in network order, still has it.
static __always_inline u16 tcp_local_port(void *sk)
{
    u16 port = 0;
    READ_KERNEL(&port, sizeof(port), (char *)sk + TCP_INET_SPORT);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    port = __builtin_bswap16(port);
#endif
    return port;
}
#endif

// Add `bytes` to the current process's and the socket's connection's entries.
static __always_inline int add(void *sk, u16 family, u16 protocol, u64 bytes, int is_send)
{
    int slot = 0;
    u32 *gen = generation.lookup(&slot);
    if (!gen)
        return 0;
    u64 id = bpf_get_current_pid_tgid();
    struct proc_key pkey = {};
    pkey.tgid = id >> 32;
    pkey.gen = *gen;
    u32 is_leader = (u32)id == pkey.tgid;
    struct proc_val *p = procs.lookup(&pkey);
    if (!p) {
        struct proc_val init = {};
        bpf_get_current_comm(&init.comm, sizeof(init.comm));
        init.leader = is_leader;
        procs.insert(&pkey, &init);
        p = procs.lookup(&pkey);
        if (!p)
            return 0;
    } else if (!p->leader && is_leader) {
        bpf_get_current_comm(&p->comm, sizeof(p->comm));
        p->leader = 1;
    }
    if (is_send)
        __sync_fetch_and_add(&p->sent, bytes);
    else
        __sync_fetch_and_add(&p->recv, bytes);

    struct conn_key key = {};
    key.tgid = pkey.tgid;
    key.gen = pkey.gen;
    key.family = family;
    key.protocol = protocol;
    if (family == NT_AF_INET || family == NT_AF_INET6) {
        struct sock_head h = {};
        if (READ_KERNEL(&h, sizeof(h), sk) == 0 && h.family == family) {
            key.lport = h.num;
            key.rport = h.dport;
#if TCP_READS
            if (!key.lport && protocol == NT_IPPROTO_TCP)
                key.lport = tcp_local_port(sk);
#endif
            if (family == NT_AF_INET) {
                __builtin_memcpy(key.laddr, &h.rcv_saddr, 4);
                __builtin_memcpy(key.raddr, &h.daddr, 4);
            } else {
                __builtin_memcpy(key.laddr, h.v6_rcv_saddr, 16);
                __builtin_memcpy(key.raddr, h.v6_daddr, 16);
            }
        }
    }
    struct conn_val *c = conns.lookup(&key);
    if (!c) {
        struct conn_val zero = {};
        conns.insert(&key, &zero);
        c = conns.lookup(&key);
        if (!c)
            return 0;
    }
    if (is_send)
        __sync_fetch_and_add(&c->sent, bytes);
    else
        __sync_fetch_and_add(&c->recv, bytes);
    return 0;
}

static __always_inline int count(void *sk, u16 family, u16 protocol, int ret, int flags,
                                 int is_send)
{
    return counted(family, ret, flags) ? add(sk, family, protocol, ret, is_send) : 0;
}

#if !USE_KPROBES

TRACEPOINT_PROBE(sock, sock_send_length)
{
    return count(args->sk, args->family, args->protocol, args->ret, args->flags, 1);
}

#if TCP_READS

// TCP reads that never reach sock_recv_length: splice() from a socket (tcp_read_sock),
// TCP zero-copy receive, tcp_read_skb. What every TCP read does, whatever the path, is
// advance tcp_sock's copied_seq (the next sequence number the application will read)
// and then reach tcp_rcv_space_adjust, whose tracepoint sees the socket. So per socket
// we keep the copied_seq up to which its reads are counted, and there count the
// advance. recvmsg reaches the same tracepoint once per chunk it copies, before
// sock_recv_length reports the call's total; `pending` holds what was counted here
// since the last recvmsg returned, and sock_recv_length counts only what exceeds it
// (bytes of a call that began before the socket had an entry), so no byte counts twice.
// A socket gets its entry when it becomes ESTABLISHED (copied_seq is then the first
// byte), or at its first read; one established before the program loaded therefore
// misses the bytes of its first non-recvmsg read. The entry goes with the socket.
#define NT_TCP_ESTABLISHED 1
#define NT_TCP_FIN_WAIT2 5
#define NT_TCP_CLOSE 7
#define NT_TCP_CLOSE_WAIT 8
#define NT_TCP_CLOSING 11

struct tcp_rx {
    u64 pending;  // bytes counted at tcp_rcv_space_adjust since the last recvmsg returned
    u32 seq;      // copied_seq up to which this socket's reads are counted
    u32 fin;      // the peer's FIN's sequence number, once it has arrived (has_fin)
    u32 has_fin;  // copied_seq steps over the FIN too, which is not payload
    u32 pad;
};

BPF_TABLE("lru_hash", u64, struct tcp_rx, tcp_rx, CONN_MAX);

static __always_inline u32 tcp_u32(void *sk, int offset)
{
    u32 value = 0;
    READ_KERNEL(&value, sizeof(value), (char *)sk + offset);
    return value;
}

// No upper-layer protocol (kTLS, an MPTCP subflow): those move copied_seq themselves,
// for bytes their own recvmsg reports, so such sockets are counted by recvmsg alone.
static __always_inline int tcp_plain(void *sk)
{
    void *ulp_ops = 0;
    READ_KERNEL(&ulp_ops, sizeof(ulp_ops), (char *)sk + TCP_ICSK_ULP_OPS);
    return ulp_ops == 0;
}

// A fresh entry for the socket, counted up to `seq`.
static __always_inline void tcp_rx_start(u64 key, u32 seq)
{
    struct tcp_rx init = {};
    init.seq = seq;
    tcp_rx.update(&key, &init);
}

TRACEPOINT_PROBE(tcp, tcp_rcv_space_adjust)
{
    void *sk = (void *)args->skaddr;
    if (!tcp_plain(sk))
        return 0;
    u64 key = (u64)sk;
    u32 seq = tcp_u32(sk, TCP_COPIED_SEQ);
    struct tcp_rx *rx = tcp_rx.lookup(&key);
    if (!rx) {
        tcp_rx_start(key, seq);
        return 0;
    }
    u32 moved = seq - rx->seq;
    if ((s32)moved <= 0)  // MSG_PEEK, or nothing read
        return 0;
    if (rx->has_fin && (s32)(rx->fin - rx->seq) >= 0 && (s32)(seq - rx->fin) > 0)
        moved -= 1;  // this read stepped over the FIN
    rx->seq = seq;
    rx->pending += moved;
    return moved ? add(sk, args->family, NT_IPPROTO_TCP, moved, 0) : 0;
}

// The part of a recvmsg's `ret` that tcp_rcv_space_adjust did not count already.
static __always_inline int tcp_recv_rest(void *sk, int ret)
{
    u64 key = (u64)sk;
    u32 seq = tcp_u32(sk, TCP_COPIED_SEQ);
    struct tcp_rx *rx = tcp_rx.lookup(&key);
    if (!rx) {
        tcp_rx_start(key, seq);
        return ret;
    }
    u64 pending = rx->pending;
    rx->pending = 0;
    rx->seq = seq;  // past the FIN or an urgent byte recvmsg stepped over, if any
    return pending >= (u64)ret ? 0 : ret - (int)pending;
}

TRACEPOINT_PROBE(sock, inet_sock_set_state)
{
    if (args->protocol != NT_IPPROTO_TCP)
        return 0;
    void *sk = (void *)args->skaddr;
    u64 key = (u64)sk;
    int to = args->newstate;
    if (to == NT_TCP_ESTABLISHED) {
        tcp_rx_start(key, tcp_u32(sk, TCP_COPIED_SEQ));
        return 0;
    }
    // The states tcp_fin() moves to when the peer's FIN arrives; rcv_nxt is past it.
    if (to == NT_TCP_CLOSE_WAIT || to == NT_TCP_CLOSING ||
        (to == NT_TCP_CLOSE && args->oldstate == NT_TCP_FIN_WAIT2)) {
        struct tcp_rx *rx = tcp_rx.lookup(&key);
        if (rx) {
            rx->fin = tcp_u32(sk, TCP_RCV_NXT) - 1;
            rx->has_fin = 1;
        }
    }
    return 0;
}

TRACEPOINT_PROBE(tcp, tcp_destroy_sock)
{
    u64 key = (u64)args->skaddr;
    tcp_rx.delete(&key);
    return 0;
}

#endif  // TCP_READS

TRACEPOINT_PROBE(sock, sock_recv_length)
{
    int ret = args->ret;
    if (!counted(args->family, ret, args->flags))
        return 0;
#if TCP_READS
    if (args->protocol == NT_IPPROTO_TCP &&
        (args->family == NT_AF_INET || args->family == NT_AF_INET6) && tcp_plain(args->sk)) {
        ret = tcp_recv_rest(args->sk, ret);
        if (!ret)
            return 0;
    }
#endif
    return add(args->sk, args->family, args->protocol, ret, 0);
}

#else  // Kernels before 6.3: kprobe + kretprobe pairs on the TCP and UDP entry points.

#include <uapi/linux/ptrace.h>

#define NT_IPPROTO_UDP 17
enum { TCP_SEND, TCP_RECV, UDP_SEND, UDP_RECV, UDP6_SEND, UDP6_RECV };

struct call_key {
    u64 id;  // pid_tgid of the calling thread
    u32 fn;  // which function: the pairs nest (udpv6_sendmsg calls udp_sendmsg)
    u32 pad;
};

struct call {
    void *sk;
    int flags;
    int pad;
};

// Arguments saved at entry for the return probe; LRU so a missed return cannot fill it.
BPF_TABLE("lru_hash", struct call_key, struct call, calls, 16384);

static __always_inline int enter(u32 fn, void *sk, int flags)
{
    struct call_key k = {};
    k.id = bpf_get_current_pid_tgid();
    k.fn = fn;
    struct call c = {};
    c.sk = sk;
    c.flags = flags;
    calls.update(&k, &c);
    return 0;
}

static __always_inline int leave(u32 fn, int ret, u16 protocol, int is_send)
{
    struct call_key k = {};
    k.id = bpf_get_current_pid_tgid();
    k.fn = fn;
    struct call *saved = calls.lookup(&k);
    if (!saved)
        return 0;
    struct call c = *saved;
    calls.delete(&k);
    u16 family = 0;
    void *family_ptr = (char *)c.sk + __builtin_offsetof(struct sock_head, family);
    if (READ_KERNEL(&family, sizeof(family), family_ptr))
        return 0;
    // udpv6_sendmsg hands IPv4-mapped destinations to udp_sendmsg; count them once.
    if (fn == UDP_SEND && family == NT_AF_INET6)
        return 0;
    return count(c.sk, family, protocol, ret, c.flags, is_send);
}

// enter_<fn> saves the socket (and recv flags); leave_<fn> counts what <fn> returned.
#define PAIR(fn, which, protocol, is_send, flags)                                      \
    int enter_##fn(struct pt_regs *ctx)                                                 \
    {                                                                                   \
        return enter(which, (void *)PT_REGS_PARM1(ctx), flags);                         \
    }                                                                                   \
    int leave_##fn(struct pt_regs *ctx)                                                 \
    {                                                                                   \
        return leave(which, PT_REGS_RC(ctx), protocol, is_send);                        \
    }

PAIR(tcp_sendmsg, TCP_SEND, NT_IPPROTO_TCP, 1, 0)
PAIR(tcp_recvmsg, TCP_RECV, NT_IPPROTO_TCP, 0, RECV_FLAGS(ctx))
PAIR(udp_sendmsg, UDP_SEND, NT_IPPROTO_UDP, 1, 0)
PAIR(udp_recvmsg, UDP_RECV, NT_IPPROTO_UDP, 0, RECV_FLAGS(ctx))
PAIR(udpv6_sendmsg, UDP6_SEND, NT_IPPROTO_UDP, 1, 0)
PAIR(udpv6_recvmsg, UDP6_RECV, NT_IPPROTO_UDP, 0, RECV_FLAGS(ctx))

#endif
