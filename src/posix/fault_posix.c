/* The POSIX back end's fault handling (src/os.h, "fault recovery" and "the dispatcher"): one
   process-wide SIGBUS + SIGSEGV handler that offers each memory fault to the hooks, then to the
   guard running on the faulting thread, and passes every other fault on exactly as if the library
   were absent. */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <ucontext.h>

#include "posix.h"

/* One guarded run, on its thread's stack. */
struct guard_frame {
  sigjmp_buf env;
  const struct xm__fault_guard *guard;
  struct guard_frame *prev; /* the run this one interrupted (a signal handler's run nests) */
};

/* The fault this thread is passing on, kept by value (a handler that jumps out leaves it behind, and
   nothing here may then point into a dead frame): a handler passing it back to the library calls
   it with the same context, from deeper on the same stack. A new fault never matches both: a new
   signal frame at the same place as a dead one puts the handler at the same depth. */
struct passing {
  const void *uc;  /* the context handed on; compared, never followed */
  uintptr_t frame; /* the frame of the on_fault that handed it on */
  unsigned depth;  /* how many handlers passed it back so far */
};

/* Set and read on the same thread only. */
static XM__TLS struct guard_frame *volatile running;
static XM__TLS struct passing passing;
static XM__TLS void *dispatcher_slot;

void *xm__os_fault_thread_get(void) { return dispatcher_slot; }
void xm__os_fault_thread_set(void *p) { dispatcher_slot = p; }
void xm__os_yield(void) { sched_yield(); }

/* What handled each signal before the library: chain[0] when it was first installed, then what
   each reinstall found in front of it. Entries are written once, then published by the count. */
#define CHAIN_MAX 16
struct chain {
  struct sigaction handlers[CHAIN_MAX];
  atomic_uint count;
};
static struct chain chain_bus, chain_segv;
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool installed;

static void on_fault(int sig, siginfo_t *info, void *uc);

static bool is_ours(const struct sigaction *sa) { return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == on_fault; }

/* Handles the signal as prev would have. */
static void call_handler(const struct sigaction *prev, int sig, siginfo_t *info, void *uc) {
  if (prev->sa_flags & SA_SIGINFO) {
    if (prev->sa_sigaction) prev->sa_sigaction(sig, info, uc);
    return;
  }
  if (prev->sa_handler == SIG_IGN) {
    /* A signal someone sent stays ignored; a fault cannot be ignored (the kernel forces the
       default action for a synchronous fault whose signal is ignored): fall through. */
    if (info == NULL || info->si_code <= 0) return;
  } else if (prev->sa_handler != SIG_DFL) {
    prev->sa_handler(sig);
    return;
  }
  /* The default action: put it back and re-raise (the handler runs with SA_NODEFER, so the signal
     is not blocked and the default action happens now; a fault would also recur on return). */
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(sig, &dfl, NULL);
  raise(sig);
}

/* Passes the signal to the depth-th handler counted back from the newest one in the chain: a
   handler that passes a fault back to the library is followed by the one it was installed over. */
static void pass_on(int sig, siginfo_t *info, void *uc, unsigned depth) {
  const struct chain *c = sig == SIGBUS ? &chain_bus : &chain_segv;
  unsigned n = atomic_load_explicit(&c->count, memory_order_acquire);
  static const struct sigaction dfl; /* SIG_DFL: when every handler passed it back */
  call_handler(depth < n ? &c->handlers[n - 1 - depth] : &dfl, sig, info, uc);
}

/* The faulting instruction and the access kind, where the CPU and the OS report them. */
static void describe(xm_fault *f, const siginfo_t *info, void *ucv) {
  ucontext_t *uc = ucv;
  f->addr = info->si_addr;
  f->context = ucv;
  f->pc = NULL;
  f->access = 0;
#if defined(__linux__) && (defined(__x86_64__) || defined(__i386__))
#if defined(__x86_64__)
  f->pc = (void *)(uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#else
  f->pc = (void *)(uintptr_t)uc->uc_mcontext.gregs[REG_EIP];
#endif
  /* A page fault's error code: bit 1 a write, bit 4 an instruction fetch. */
  if (uc->uc_mcontext.gregs[REG_TRAPNO] == 14) {
    unsigned long err = (unsigned long)uc->uc_mcontext.gregs[REG_ERR];
    f->access = err & 16 ? XM_PROT_EXEC : err & 2 ? XM_PROT_WRITE : XM_PROT_READ;
  }
#elif defined(__linux__) && defined(__aarch64__)
  f->pc = (void *)(uintptr_t)uc->uc_mcontext.pc;
  /* The ESR record among the signal frame's context records: EC 0x20/0x21 an instruction abort,
     0x24/0x25 a data abort whose WnR bit (6) says write. */
  const unsigned char *at = (const unsigned char *)uc->uc_mcontext.__reserved;
  const unsigned char *end = at + sizeof uc->uc_mcontext.__reserved;
  while (at + 8 <= end) {
    uint32_t magic, size;
    memcpy(&magic, at, 4);
    memcpy(&size, at + 4, 4);
    if (magic == 0 || size < 8 || size > (size_t)(end - at)) break;
    if (magic == 0x45535201u /* ESR_MAGIC */ && size >= 16) {
      uint64_t esr;
      memcpy(&esr, at + 8, 8);
      unsigned ec = (unsigned)(esr >> 26) & 0x3f;
      if (ec == 0x20 || ec == 0x21) f->access = XM_PROT_EXEC;
      if (ec == 0x24 || ec == 0x25) f->access = esr & (1u << 6) ? XM_PROT_WRITE : XM_PROT_READ;
      break;
    }
    at += size;
  }
#elif defined(__linux__) && defined(__arm__)
  f->pc = (void *)(uintptr_t)uc->uc_mcontext.arm_pc;
#elif defined(__linux__) && defined(__riscv)
  f->pc = (void *)(uintptr_t)uc->uc_mcontext.__gregs[0]; /* REG_PC */
#elif defined(__linux__) && defined(__powerpc64__)
  f->pc = (void *)(uintptr_t)uc->uc_mcontext.gp_regs[32 /* PT_NIP */];
  /* The interrupt: 0x400 an instruction storage interrupt, 0x300 a data storage interrupt whose
     DSISR bit 0x02000000 says store. */
  unsigned long trap = uc->uc_mcontext.gp_regs[40 /* PT_TRAP */] & ~0xful;
  if (trap == 0x400) f->access = XM_PROT_EXEC;
  if (trap == 0x300)
    f->access = uc->uc_mcontext.gp_regs[42 /* PT_DSISR */] & 0x02000000ul ? XM_PROT_WRITE : XM_PROT_READ;
#else
  (void)uc;
#endif
}

static void on_fault(int sig, siginfo_t *info, void *uc) {
  int saved_errno = errno;
  /* si_code <= 0: sent by kill/raise/tgkill, not a fault: only the previous handlers see it. */
  if (!info || info->si_code <= 0) {
    pass_on(sig, info, uc, 0);
    errno = saved_errno;
    return;
  }
  const uintptr_t frame = (uintptr_t)__builtin_frame_address(0);
  if (passing.uc == uc && frame < passing.frame) {
    /* A handler this thread passed the fault to passed it back: on to the one before it. */
    unsigned depth = ++passing.depth;
    pass_on(sig, info, uc, depth);
    errno = saved_errno;
    return;
  }
  struct guard_frame *f = running;
  /* The hooks, with the guard set aside: a fault inside a hook is not the guarded run's. */
  running = NULL;
  atomic_signal_fence(memory_order_seq_cst);
  xm_fault fault;
  describe(&fault, info, uc);
  bool retry = xm__fault_dispatch_hooks(&fault);
  atomic_signal_fence(memory_order_seq_cst);
  running = f;
  if (!retry) {
    if (f && (uintptr_t)info->si_addr - f->guard->lo < f->guard->len) siglongjmp(f->env, 1);
    /* Not ours. The thread's guard is cleared while the fault is passed on: a handler that jumps
       out leaves no guard behind for a later fault to jump into; one that returns gets it back. */
    const struct passing outer = passing;
    running = NULL;
    passing = (struct passing){uc, frame, 0};
    atomic_signal_fence(memory_order_seq_cst);
    pass_on(sig, info, uc, 0);
    atomic_signal_fence(memory_order_seq_cst);
    passing = outer;
    running = f;
  }
  errno = saved_errno;
}

static void fill_ours(struct sigaction *sa) {
  memset(sa, 0, sizeof *sa);
  sa->sa_sigaction = on_fault;
  /* No signal blocked while it runs (empty mask, SA_NODEFER): a hook, a chained handler or a
     signal handler may do guarded runs of its own, and a fault there reaches this handler again.
     SA_ONSTACK: on the thread's alternate stack when it has one. */
  sa->sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART | SA_NODEFER;
  sigemptyset(&sa->sa_mask);
}

/* Puts the handler in front of sig and records what was there (unless it was the handler). */
static int take_signal(int sig, struct chain *c) {
  struct sigaction ours, found;
  fill_ours(&ours);
  unsigned n = atomic_load(&c->count);
  if (sigaction(sig, NULL, &found) != 0) return xm__fail_os(XM_E_SYSTEM_CALL, errno, "sigaction");
  if (is_ours(&found)) return XM_OK;
  if (n == CHAIN_MAX)
    return xm__fail(XM_E_NO_MEMORY, "%u handlers were installed over the library's one after another", n);
  /* Recorded before the handler goes in front, so that it can pass faults on at once. A handler
     installed between the two calls is not lost: the next check sees it. */
  c->handlers[n] = found;
  atomic_store_explicit(&c->count, n + 1, memory_order_release);
  if (sigaction(sig, &ours, NULL) != 0) {
    int e = errno;
    atomic_store(&c->count, n);
    return xm__fail_os(XM_E_SYSTEM_CALL, e, "sigaction");
  }
  return XM_OK;
}

static int take_both(void) {
  int rc = take_signal(SIGBUS, &chain_bus);
  if (rc == XM_OK) rc = take_signal(SIGSEGV, &chain_segv);
  return rc;
}

int xm__os_fault_install(void) {
  if (atomic_load_explicit(&installed, memory_order_acquire)) return XM_OK;
  pthread_mutex_lock(&install_lock);
  int rc = XM_OK;
  if (!atomic_load(&installed)) {
    rc = take_both();
    if (rc == XM_OK) atomic_store_explicit(&installed, true, memory_order_release);
  }
  pthread_mutex_unlock(&install_lock);
  return rc;
}

int xm__os_fault_handler_check(void) {
  int rc = xm__os_fault_install();
  if (rc) return rc;
  static const int sigs[] = {SIGSEGV, SIGBUS};
  for (size_t i = 0; i < 2; i++) {
    struct sigaction found;
    if (sigaction(sigs[i], NULL, &found) != 0) return xm__fail_os(XM_E_SYSTEM_CALL, errno, "sigaction");
    if (!is_ours(&found))
      return xm__fail(XM_E_EXISTS, "another %s handler (%p) was installed over the library's",
                      sigs[i] == SIGSEGV ? "SIGSEGV" : "SIGBUS",
                      (found.sa_flags & SA_SIGINFO) ? (void *)(uintptr_t)found.sa_sigaction
                                                    : (void *)(uintptr_t)found.sa_handler);
  }
  return XM_OK;
}

int xm__os_fault_handler_reinstall(void) {
  int rc = xm__os_fault_install();
  if (rc) return rc;
  pthread_mutex_lock(&install_lock);
  rc = take_both();
  pthread_mutex_unlock(&install_lock);
  return rc;
}

/* The run itself, in a frame of its own so that nothing of the caller lives across sigsetjmp. */
static int run_frame(struct xm__fault_guard *g) {
  struct guard_frame f;
  f.guard = g;
  f.prev = running;
  if (sigsetjmp(f.env, 0)) {
    atomic_signal_fence(memory_order_seq_cst);
    running = f.prev;
    return XM_E_FAULT;
  }
  running = &f;
  atomic_signal_fence(memory_order_seq_cst); /* the run starts only after the handler can see it */
  g->run(g);
  atomic_signal_fence(memory_order_seq_cst);
  running = f.prev;
  return XM_OK;
}

int xm__os_run_guarded(struct xm__fault_guard *g) {
  int rc = xm__os_fault_install();
  if (rc) return rc;
  /* A synchronous fault whose signal is blocked kills the process, so the two signals are
     unblocked for the run: one call that also returns the mask to put back (only needed when the
     thread had blocked them; siglongjmp restores no mask, and the handler blocks nothing). */
  sigset_t faults, old;
  sigemptyset(&faults);
  sigaddset(&faults, SIGBUS);
  sigaddset(&faults, SIGSEGV);
  int e = pthread_sigmask(SIG_UNBLOCK, &faults, &old);
  if (e != 0) return xm__fail_os(XM_E_SYSTEM_CALL, e, "pthread_sigmask");
  rc = run_frame(g);
  if (sigismember(&old, SIGBUS) == 1 || sigismember(&old, SIGSEGV) == 1) pthread_sigmask(SIG_SETMASK, &old, NULL);
  return rc;
}
