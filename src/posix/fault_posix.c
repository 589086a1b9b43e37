/* The POSIX back end's fault recovery (src/os.h xm__os_run_guarded): one process-wide SIGBUS +
   SIGSEGV handler that recovers only the faults of the guard running now on the faulting thread,
   and passes every other fault on exactly as if the library were absent. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

#include "posix.h"

/* One guarded run, on its thread's stack. */
struct guard_frame {
  sigjmp_buf env;
  const struct xm__fault_guard *guard;
  struct guard_frame *prev; /* the run this one interrupted (a signal handler's run nests) */
};

/* The thread's running guard. Set and read on the same thread only; a thread that has stored here
   once needs no TLS allocation in the handler. */
static _Thread_local struct guard_frame *volatile running;

static struct sigaction prev_sigbus, prev_sigsegv;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;
static int install_error; /* errno of a failed sigaction, 0 when installed */

/* Passes a fault on as the previous disposition would have handled it. */
static void chain_signal(int sig, siginfo_t *info, void *uc) {
  const struct sigaction *prev = sig == SIGBUS ? &prev_sigbus : &prev_sigsegv;
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

static void on_fault(int sig, siginfo_t *info, void *uc) {
  int saved_errno = errno;
  struct guard_frame *f = running;
  /* si_code > 0: raised by the kernel for a fault, not sent by kill/raise/tgkill. */
  if (f && info && info->si_code > 0 && (uintptr_t)info->si_addr - f->guard->lo < f->guard->len) siglongjmp(f->env, 1);
  /* Not ours. The thread's guard is cleared while the fault is passed on: a handler that jumps
     out leaves no guard behind for a later fault to jump into; one that returns gets it back. */
  running = NULL;
  atomic_signal_fence(memory_order_seq_cst);
  chain_signal(sig, info, uc);
  atomic_signal_fence(memory_order_seq_cst);
  running = f;
  errno = saved_errno;
}

static void install_fault_handler(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_fault;
  /* No signal blocked while it runs (empty mask, SA_NODEFER): a chained handler or a signal
     handler may do guarded runs of its own, and a fault there reaches this handler again. */
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGBUS, &sa, &prev_sigbus) != 0) {
    install_error = errno;
    return;
  }
  if (sigaction(SIGSEGV, &sa, &prev_sigsegv) != 0) {
    install_error = errno;
    sigaction(SIGBUS, &prev_sigbus, NULL);
  }
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
  pthread_once(&install_once, install_fault_handler);
  if (install_error) return xm__fail_os(XM_E_SYSTEM_CALL, install_error, "sigaction(SIGBUS/SIGSEGV)");
  /* A synchronous fault whose signal is blocked kills the process, so the two signals are
     unblocked for the run: one call that also returns the mask to put back (only needed when the
     thread had blocked them; siglongjmp restores no mask, and the handler blocks nothing). */
  sigset_t faults, old;
  sigemptyset(&faults);
  sigaddset(&faults, SIGBUS);
  sigaddset(&faults, SIGSEGV);
  int e = pthread_sigmask(SIG_UNBLOCK, &faults, &old);
  if (e != 0) return xm__fail_os(XM_E_SYSTEM_CALL, e, "pthread_sigmask");
  int rc = run_frame(g);
  if (sigismember(&old, SIGBUS) == 1 || sigismember(&old, SIGSEGV) == 1) pthread_sigmask(SIG_SETMASK, &old, NULL);
  return rc;
}
