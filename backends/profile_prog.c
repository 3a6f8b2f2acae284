// The kernel half of backends/ebpf_profile.py (read its docstring first). bcc compiles
// this with PROC_MAX, THREAD_MAX, SYSCALL_MAX, WATCH_MAX, SYSCALL_NR_MAX: the sizes of the
// maps below, and two settings fixed at compile time (so that no event can come before
// them, and no event pays a lookup for them):
//   FILTERED    1: count only the tgids in `watched` (run/attach); 0: every process
//   DETAIL_ALL  1: per-thread and per-syscall detail for every counted process (--json,
//               run/attach); 0: only for the tgids in `detail` (the TUI's drill-down)
//
// Everything is aggregated here; user space only reads the totals once per tick.

#define NT_TASK_INTERRUPTIBLE 0x1    // S: waiting for an event (sleep, pipe, socket, futex)
#define NT_TASK_UNINTERRUPTIBLE 0x2  // D: waiting on the kernel, mostly disk I/O
#define NT_TASK_IDLE_REPORT 0x80     // I: an idle kernel thread (TASK_IDLE as reported)

BPF_HASH(watched, u32, u8, WATCH_MAX);
BPF_HASH(detail, u32, u8, WATCH_MAX);

// What a blocked period was waiting on, from the syscall the thread was in: the
// `wait_class` array (filled by user space from the categories) maps a syscall number to
// WAIT_FILE or WAIT_NETWORK; anything else, or no syscall, is WAIT_OTHER (sleep, futex).
#define WAIT_OTHER 0
#define WAIT_FILE 1
#define WAIT_NETWORK 2
#define WAIT_DISK 3  // D state, whatever the syscall

struct proc_val {
    u64 offcpu_ns;     // time its threads spent blocked (S or D), switch-out to switch-in
    u64 offcpu_wait_ns[4];  // that time by WAIT_* class
    u64 offcpu_events; // blocked periods that ended
    u64 offcpu_max_ns; // the longest one
    u64 syscalls;      // raw_syscalls:sys_enter events
};

struct thread_key {
    u32 tgid;
    u32 tid;
};

struct thread_val {
    u64 offcpu_ns;
    u64 offcpu_events;
};

struct syscall_key {
    u32 tgid;
    u32 nr;
};

struct blocked {
    u64 since;  // bpf_ktime_get_ns() at the switch-out
    u32 tgid;
    u8 wait;    // WAIT_*
    u8 detail;  // keep a per-thread total
    u16 pad;
};

BPF_TABLE("lru_hash", u32, struct proc_val, procs, PROC_MAX);
BPF_TABLE("lru_hash", struct thread_key, struct thread_val, threads, THREAD_MAX);
BPF_TABLE("lru_hash", struct syscall_key, u64, syscalls, SYSCALL_MAX);
BPF_TABLE("lru_hash", u32, struct blocked, blocked_since, THREAD_MAX);
// The syscall each thread entered last, in a slot picked by the low bits of its tid: a
// plain array write per syscall, far cheaper than a hash update. A slot is trusted only
// when it holds that tid (two threads sharing a slot leave the wait unclassified).
struct last_syscall {
    u32 tid;
    u32 nr;
};
#define IN_SYSCALL_SLOTS (1 << 18)
BPF_ARRAY(in_syscall, struct last_syscall, IN_SYSCALL_SLOTS);
BPF_ARRAY(wait_class, u8, SYSCALL_NR_MAX);

static __always_inline int counted(u32 tgid)
{
    return !FILTERED || watched.lookup(&tgid) != NULL;
}

static __always_inline int detailed(u32 tgid)
{
    return DETAIL_ALL || detail.lookup(&tgid) != NULL;
}

static __always_inline struct proc_val *proc_of(u32 tgid)
{
    struct proc_val *p = procs.lookup(&tgid);
    if (p)
        return p;
    struct proc_val zero = {};
    procs.insert(&tgid, &zero);
    return procs.lookup(&tgid);
}

// A child of a watched process is watched from its first instruction. A new thread's
// tid lands in `watched` too: harmless, no process has that id as its tgid meanwhile.
TRACEPOINT_PROBE(sched, sched_process_fork)
{
    if (!FILTERED)
        return 0;
    u32 parent = bpf_get_current_pid_tgid() >> 32;
    if (watched.lookup(&parent) == NULL)
        return 0;
    u32 child = args->child_pid;
    u8 one = 1;
    watched.update(&child, &one);
    if (detail.lookup(&parent) != NULL)
        detail.update(&child, &one);
    return 0;
}

// Runs in the task leaving the CPU (prev): note when it blocked; then end the blocked
// period of the task coming in (next), if it had one.
TRACEPOINT_PROBE(sched, sched_switch)
{
    u64 now = bpf_ktime_get_ns();
    u64 id = bpf_get_current_pid_tgid();
    u32 prev = (u32)id;
    u32 tgid = id >> 32;
    long state = args->prev_state;
    if (prev != 0 && (state & (NT_TASK_INTERRUPTIBLE | NT_TASK_UNINTERRUPTIBLE |
                               NT_TASK_IDLE_REPORT)) &&
        counted(tgid)) {
        struct blocked b = {};
        b.since = now;
        b.tgid = tgid;
        if (state & NT_TASK_UNINTERRUPTIBLE) {
            b.wait = WAIT_DISK;
        } else {
            u32 slot = prev & (IN_SYSCALL_SLOTS - 1);
            struct last_syscall *last = in_syscall.lookup(&slot);
            u8 *cls = NULL;
            if (last && last->tid == prev)
                cls = wait_class.lookup(&last->nr);
            b.wait = cls ? *cls : WAIT_OTHER;
        }
        b.detail = detailed(tgid);
        blocked_since.update(&prev, &b);
    }

    u32 next = args->next_pid;
    if (next == 0)
        return 0;
    struct blocked *b = blocked_since.lookup(&next);
    if (!b)
        return 0;
    u64 delta = now - b->since;
    u32 owner = b->tgid;
    u8 wait = b->wait & 3;
    u8 per_thread = b->detail;
    blocked_since.delete(&next);

    struct proc_val *p = proc_of(owner);
    if (!p)
        return 0;
    __sync_fetch_and_add(&p->offcpu_ns, delta);
    __sync_fetch_and_add(&p->offcpu_wait_ns[wait], delta);
    __sync_fetch_and_add(&p->offcpu_events, 1);
    if (delta > p->offcpu_max_ns)
        p->offcpu_max_ns = delta;  // a race with another CPU can only lose a near-equal max
    if (!per_thread)
        return 0;
    struct thread_key tk = {};
    tk.tgid = owner;
    tk.tid = next;
    struct thread_val *t = threads.lookup(&tk);
    if (!t) {
        struct thread_val zero = {};
        threads.insert(&tk, &zero);
        t = threads.lookup(&tk);
        if (!t)
            return 0;
    }
    __sync_fetch_and_add(&t->offcpu_ns, delta);
    __sync_fetch_and_add(&t->offcpu_events, 1);
    return 0;
}

// The raw form of raw_syscalls:sys_enter (args: struct pt_regs *, long id): the classic
// tracepoint would first copy the six arguments into a record, on every syscall.
RAW_TRACEPOINT_PROBE(sys_enter)
{
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (!counted(tgid))
        return 0;
    struct proc_val *p = proc_of(tgid);
    if (!p)
        return 0;
    __sync_fetch_and_add(&p->syscalls, 1);
    u32 tid = (u32)bpf_get_current_pid_tgid();
    u32 nr = (u32)ctx->args[1];
    u32 slot = tid & (IN_SYSCALL_SLOTS - 1);
    struct last_syscall *last = in_syscall.lookup(&slot);
    if (last) {
        last->tid = tid;
        last->nr = nr;
    }
    if (!detailed(tgid))
        return 0;
    struct syscall_key sk = {};
    sk.tgid = tgid;
    sk.nr = nr;
    u64 *count = syscalls.lookup(&sk);
    if (!count) {
        u64 zero = 0;
        syscalls.insert(&sk, &zero);
        count = syscalls.lookup(&sk);
        if (!count)
            return 0;
    }
    __sync_fetch_and_add(count, 1);
    return 0;
}
