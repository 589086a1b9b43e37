/* The Windows back end's fault handling (src/os.h, "fault recovery" and "the dispatcher"): one
   process-wide vectored exception handler that offers each memory fault to the hooks, then to the
   guard running now on the faulting thread, and passes every other exception on to the next
   handler untouched.
 *
 * The order is hooks -> the safe copy's recovery -> the handlers behind this one (vectored
 * handlers added later with "last", then the frame-based __try/__except handlers of the faulting
 * thread, then the unhandled-exception filter). Recovery therefore happens inside the vectored
 * handler, not in an __except of the run: a vectored handler behind the library's would see the
 * safe copy's fault before any frame-based handler could take it.
 *
 * Recovery continues the thread in its run's frame by rewriting the faulting context, which works
 * without __try (MinGW) and unwinds nothing through the system's frames: the handler returns
 * EXCEPTION_CONTINUE_EXECUTION and the exception dispatch is over. With MSVC the context is the
 * run's own, captured by RtlCaptureContext; with gcc it calls resume(), which __builtin_longjmp's
 * back (see "recovery" below). */
#include "win.h"

/* The thread's running guard and the dispatcher's pointer (TLS slots: TlsGetValue never
   allocates, also in the handler). */
static DWORD running = TLS_OUT_OF_INDEXES;
static DWORD dispatcher_slot = TLS_OUT_OF_INDEXES;
static INIT_ONCE install_once = INIT_ONCE_STATIC_INIT;
static SRWLOCK reinstall_lock = SRWLOCK_INIT;
static void *handler; /* AddVectoredExceptionHandler's handle; guarded by reinstall_lock */

void *xm__os_fault_thread_get(void) {
  DWORD saved_error = GetLastError();
  void *p = dispatcher_slot == TLS_OUT_OF_INDEXES ? NULL : TlsGetValue(dispatcher_slot);
  SetLastError(saved_error);
  return p;
}
void xm__os_fault_thread_set(void *p) {
  if (dispatcher_slot != TLS_OUT_OF_INDEXES) TlsSetValue(dispatcher_slot, p);
}
void xm__os_yield(void) { SwitchToThread(); }

/* The hooks' view of an access violation: ExceptionInformation[0] is 0 for a read, 1 for a write
   and 8 for an execution (DEP), on x86-64 and ARM64 alike (the OS decodes the CPU's syndrome:
   ARM64's ESR_EL1 WnR and instruction-abort bits); the pc is the exception's address, which is
   CONTEXT's Rip / Pc at the fault. */
static bool offer_to_hooks(EXCEPTION_POINTERS *info) {
  const EXCEPTION_RECORD *rec = info->ExceptionRecord;
  xm_fault fault;
  fault.addr = (void *)rec->ExceptionInformation[1];
  fault.pc = rec->ExceptionAddress;
  fault.context = info->ContextRecord;
  fault.access = rec->ExceptionInformation[0] == 0   ? XM_PROT_READ
                 : rec->ExceptionInformation[0] == 1 ? XM_PROT_WRITE
                 : rec->ExceptionInformation[0] == 8 ? XM_PROT_EXEC
                                                     : 0;
  /* The guard is set aside while hooks run: a fault inside a hook is not the guarded run's. */
  void *guard = TlsGetValue(running);
  TlsSetValue(running, NULL);
  bool retry = xm__fault_dispatch_hooks(&fault);
  TlsSetValue(running, guard);
  return retry;
}

static bool recover_guard(EXCEPTION_POINTERS *info);

static LONG CALLBACK on_exception(EXCEPTION_POINTERS *info) {
  const EXCEPTION_RECORD *rec = info->ExceptionRecord;
  if ((rec->ExceptionCode != EXCEPTION_ACCESS_VIOLATION && rec->ExceptionCode != EXCEPTION_IN_PAGE_ERROR) ||
      rec->NumberParameters < 2)
    return EXCEPTION_CONTINUE_SEARCH;
  DWORD saved_error = GetLastError();
  LONG verdict = EXCEPTION_CONTINUE_SEARCH;
  /* An arena remainder being mapped again is there a moment later: retried before any hook sees it. */
  if (xm__win_arena_wait_remap((uintptr_t)rec->ExceptionInformation[1], rec->ExceptionInformation[0]) ||
      offer_to_hooks(info) || recover_guard(info))
    verdict = EXCEPTION_CONTINUE_EXECUTION;
  SetLastError(saved_error);
  return verdict;
}

struct install_failure {
  DWORD error;
  const char *call;
};

/* Returning FALSE leaves the INIT_ONCE unset: a failure (no TLS index, no memory) is reported and
   tried again on the next use, never cached. */
static BOOL CALLBACK install(INIT_ONCE *once, void *param, void **context) {
  (void)once;
  (void)context;
  struct install_failure *failure = param;
  DWORD guard_index = TlsAlloc(), slot_index = TlsAlloc();
  if (guard_index == TLS_OUT_OF_INDEXES || slot_index == TLS_OUT_OF_INDEXES) {
    failure->error = GetLastError();
    failure->call = "TlsAlloc";
    if (guard_index != TLS_OUT_OF_INDEXES) TlsFree(guard_index);
    if (slot_index != TLS_OUT_OF_INDEXES) TlsFree(slot_index);
    return FALSE;
  }
  running = guard_index;
  dispatcher_slot = slot_index;
  /* First in the chain: only faults a hook or a running guard takes stop here. */
  handler = AddVectoredExceptionHandler(1, on_exception);
  if (!handler) {
    failure->error = GetLastError();
    failure->call = "AddVectoredExceptionHandler";
    running = dispatcher_slot = TLS_OUT_OF_INDEXES;
    TlsFree(guard_index);
    TlsFree(slot_index);
    return FALSE;
  }
  return TRUE;
}

int xm__os_fault_install(void) {
  struct install_failure failure = {ERROR_OUTOFMEMORY, "InitOnceExecuteOnce"};
  if (!InitOnceExecuteOnce(&install_once, install, &failure, NULL))
    return xm__fail_os(XM_E_SYSTEM_CALL, (int)(failure.error ? failure.error : ERROR_OUTOFMEMORY), failure.call);
  return XM_OK;
}

/* Windows cannot list vectored handlers: a handler added in front of the library's later is
   invisible here, so the check can only say that the library's is installed. */
int xm__os_fault_handler_check(void) { return xm__os_fault_install(); }

/* Adds the handler again in front, then removes the old registration: there is no moment without
   it. The handlers added since stay where they were, behind it now (the OS passes exceptions on
   along its list, so no handler chains back and there is no loop). */
int xm__os_fault_handler_reinstall(void) {
  int rc = xm__os_fault_install();
  if (rc) return rc;
  AcquireSRWLockExclusive(&reinstall_lock);
  void *added = AddVectoredExceptionHandler(1, on_exception);
  if (!added) {
    rc = xm__fail_os(XM_E_SYSTEM_CALL, (int)GetLastError(), "AddVectoredExceptionHandler");
  } else {
    RemoveVectoredExceptionHandler(handler);
    handler = added;
  }
  ReleaseSRWLockExclusive(&reinstall_lock);
  return rc;
}

/* ---- recovery: back into the guarded run's frame -------------------------------------------- */
/* The CPU, by the compiler's own names first (cl.exe defines only the _M_* ones). */
#if defined(_M_ARM64) || defined(__aarch64__)
#define XM__WIN_ARM64 1
#elif defined(_M_X64) || defined(__x86_64__)
#define XM__WIN_X64 1
#elif defined(_M_IX86) || defined(__i386__)
#define XM__WIN_X86 1
#endif

/* How a recovered fault gets back to its run. cl.exe has no __builtin_setjmp, and clang's
   restores the wrong frame register on 64-bit Windows (llvm/llvm-project#72908) and does not exist
   on ARM64: with both, the run captures its own registers with RtlCaptureContext and the handler
   continues the thread with them. gcc keeps __builtin_setjmp, measured and tested longest.
   XMMAP_WIN_RESUME_BY_CONTEXT picks the first with gcc too (to test that path under MinGW). */
#if defined(_MSC_VER) || defined(__clang__) || defined(XMMAP_WIN_RESUME_BY_CONTEXT)
#define XM__RESUME_BY_CONTEXT 1
#elif defined(__GNUC__) && (defined(XM__WIN_X64) || defined(XM__WIN_X86) || defined(XM__WIN_ARM64))
#define XM__RESUME_BY_LONGJMP 1
#endif

#if defined(XM__WIN_X64) || defined(XM__WIN_ARM64)
#define XM__WIN_UNWIND_TABLES 1 /* .pdata for every function with a frame */
#endif

#if defined(XM__RESUME_BY_CONTEXT) || defined(XM__RESUME_BY_LONGJMP)
/* The faulting thread's registers, by CONTEXT's per-CPU names. */
static uintptr_t context_pc(const CONTEXT *c) {
#if defined(XM__WIN_ARM64)
  return (uintptr_t)c->Pc;
#elif defined(XM__WIN_X64)
  return (uintptr_t)c->Rip;
#else
  return (uintptr_t)c->Eip;
#endif
}
static uintptr_t context_sp(const CONTEXT *c) {
#if defined(XM__WIN_ARM64)
  return (uintptr_t)c->Sp;
#elif defined(XM__WIN_X64)
  return (uintptr_t)c->Rsp;
#else
  return (uintptr_t)c->Esp;
#endif
}

/* One guarded run, on its thread's stack; its address marks the run's frame. The range is a copy:
   the handler may read a frame that is dead (stack memory, readable whatever is there now), but
   never follows a pointer out of it. */
struct guard_frame {
#if defined(XM__RESUME_BY_CONTEXT)
  /* run_frame's registers just after its RtlCaptureContext call returned. First: CONTEXT is
     16-byte aligned on x86-64, as RtlCaptureContext's stores need. */
  CONTEXT resume;
  volatile LONG resumed;              /* set by the handler just before it continues with resume */
  struct guard_frame *volatile outer; /* the run this one interrupts */
#else
  void *jmp[5]; /* __builtin_setjmp's buffer */
#endif
  uintptr_t lo;
  size_t len;
};

#if defined(XM__WIN_UNWIND_TABLES)
/* An address inside run_frame, for the liveness check below. */
static uintptr_t run_frame_pc(const struct guard_frame *f);

/* Whether the run that owns f is on the faulting thread's call chain: x86-64 and ARM64 code has
   unwind tables (.pdata), so the chain is unwound from the faulting context up to f. A dead run's
   frame below the fault can look intact (its memory not reused yet), and only this tells it from
   a live one. Functions are compared by their unwind entries, not by address ranges: ARM64
   entries carry no end address, and an MSVC incremental link makes &run_frame a jump thunk. */
static bool run_is_live(const CONTEXT *fault, const struct guard_frame *f) {
  DWORD64 run_image = 0;
  const RUNTIME_FUNCTION *run_fn = RtlLookupFunctionEntry(run_frame_pc(f), &run_image, NULL);
  if (!run_fn) return false;
  CONTEXT c = *fault;
  for (int depth = 0; depth < 32 && context_pc(&c) != 0 && context_sp(&c) <= (uintptr_t)f; depth++) {
    DWORD64 image = 0;
    const uintptr_t sp = context_sp(&c);
    RUNTIME_FUNCTION *fn = RtlLookupFunctionEntry(context_pc(&c), &image, NULL);
    const bool in_run_frame = fn && image == run_image && fn->BeginAddress == run_fn->BeginAddress;
    if (fn) {
      void *data;
      DWORD64 frame;
      RtlVirtualUnwind(0 /* UNW_FLAG_NHANDLER */, image, context_pc(&c), fn, &c, &data, &frame, NULL);
    } else if (depth > 0) {
      return false; /* only the faulting function may be a leaf: above it the chain is lost */
    } else {        /* a leaf function: it keeps its return address where a call put it */
#if defined(XM__WIN_ARM64)
      c.Pc = c.Lr;
#else
      c.Rip = *(const DWORD64 *)(uintptr_t)c.Rsp;
      c.Rsp += 8;
#endif
    }
    if (in_run_frame) return sp <= (uintptr_t)f && (uintptr_t)f < context_sp(&c); /* f lies in this frame */
  }
  return false;
}
#else
/* Without unwind tables (i386), the stack pointer check alone. */
static bool run_is_live(const CONTEXT *fault, const struct guard_frame *f) {
  (void)fault;
  (void)f;
  return true;
}
#endif

#if defined(XM__RESUME_BY_CONTEXT)
#if defined(XM__WIN_UNWIND_TABLES)
static uintptr_t run_frame_pc(const struct guard_frame *f) { return context_pc(&f->resume); }
#endif

/* The thread continues in run_frame as its RtlCaptureContext call returned, now with resumed set.
   The frames in between are abandoned as by longjmp (the exception dispatch is over once the
   handler returns EXCEPTION_CONTINUE_EXECUTION, so none of the system's is unwound); the captured
   flags leave out extended state (AVX upper halves), which no call preserves anyway. */
static void continue_run(CONTEXT *c, struct guard_frame *f) {
  f->resumed = 1;
  *c = f->resume;
}

/* The run itself, in a frame of its own. Its code after RtlCaptureContext runs twice, the second
   time with the registers of the first and the memory of the fault. The compiler does not know
   that, so the second time's path reads nothing but f's volatile fields (f lives in memory: its
   address is published) and the static TLS index, and no local of this frame changes between the
   capture and the fault. */
XM__NOINLINE static int run_frame(struct xm__fault_guard *g) {
  struct guard_frame f;
  f.lo = g->lo;
  f.len = g->len;
  f.resumed = 0;
  /* The run this one interrupts (a handler's run nests), put back when this one ends. A live outer
     run's frame lies above this one: one below it was left by an unwind (see recover_guard). */
  struct guard_frame *outer = TlsGetValue(running);
  f.outer = (uintptr_t)outer < (uintptr_t)&f ? NULL : outer;
  RtlCaptureContext(&f.resume);
  if (f.resumed) {
    TlsSetValue(running, f.outer);
    return XM_E_FAULT;
  }
  TlsSetValue(running, &f);
  g->run(g);
  TlsSetValue(running, f.outer);
  return XM_OK;
}
#else
static int run_frame(struct xm__fault_guard *g);
#if defined(XM__WIN_UNWIND_TABLES)
static uintptr_t run_frame_pc(const struct guard_frame *f) {
  (void)f;
  return (uintptr_t)run_frame;
}
#endif

/* Entered through a rewritten context, so it takes no arguments: the run is in this thread's slot. */
__attribute__((noreturn, noinline)) static void resume(void) {
  struct guard_frame *f = TlsGetValue(running);
  __builtin_longjmp(f->jmp, 1);
}

/* Continues in resume() on this thread's stack, below the faulting frame, with the stack aligned
   as at a call. Only registers change: the dispatcher still uses the memory below. */
static void continue_run(CONTEXT *c, struct guard_frame *f) {
  (void)f;
  uintptr_t sp = (context_sp(c) - 256) & ~(uintptr_t)15;
#if defined(XM__WIN_ARM64)
  c->Sp = (DWORD64)sp;
  c->Pc = (DWORD64)(uintptr_t)resume;
#elif defined(XM__WIN_X64)
  c->Rsp = (DWORD64)(sp - 8); /* the return-address slot; the 32-byte home area lies above it */
  c->Rip = (DWORD64)(uintptr_t)resume;
#else
  c->Esp = (DWORD)(sp - 4);
  c->Eip = (DWORD)(uintptr_t)resume;
#endif
}

/* The run itself, in a frame of its own so that nothing of the caller lives across setjmp. */
__attribute__((noinline)) static int run_frame(struct xm__fault_guard *g) {
  struct guard_frame f;
  f.lo = g->lo;
  f.len = g->len;
  /* The run this one interrupts (a handler's run nests), put back when this one ends. A live outer
     run's frame lies above this one: one below it was left by an unwind (see recover_guard). */
  struct guard_frame *volatile prev = TlsGetValue(running); /* volatile: read after the long jump */
  if ((uintptr_t)prev < (uintptr_t)&f) prev = NULL;
  if (__builtin_setjmp(f.jmp)) {
    TlsSetValue(running, prev);
    return XM_E_FAULT;
  }
  TlsSetValue(running, &f);
  g->run(g);
  TlsSetValue(running, prev);
  return XM_OK;
}
#endif

/* Recovers the thread's running guard when the fault is in its range (the thread then continues
   in its run, which returns XM_E_FAULT). */
static bool recover_guard(EXCEPTION_POINTERS *info) {
  const EXCEPTION_RECORD *rec = info->ExceptionRecord;
  struct guard_frame *f = TlsGetValue(running);
  if (!f) return false;
  /* The slot's run can be dead: a fault passed on from inside it that a later handler (an
     __except, a C++ catch, a longjmp) ended by unwinding past the run. Every frame of a live run
     lies below its guard_frame, so a fault above it proves it dead; below it, the unwind tables
     tell. Only the innermost run recovers, and only faults in its own range. */
  const bool below = context_sp(info->ContextRecord) < (uintptr_t)f;
  const bool in_range = (uintptr_t)rec->ExceptionInformation[1] - f->lo < f->len;
  if (below && !in_range) return false;
  if (below && run_is_live(info->ContextRecord, f)) {
    continue_run(info->ContextRecord, f);
    return true;
  }
  /* Dead: forget it, never jump into it, and pass the fault on. */
  TlsSetValue(running, NULL);
  return false;
}

int xm__os_run_guarded(struct xm__fault_guard *g) {
  int rc = xm__os_fault_install();
  return rc ? rc : run_frame(g);
}
#else
static bool recover_guard(EXCEPTION_POINTERS *info) {
  (void)info;
  return false;
}

int xm__os_run_guarded(struct xm__fault_guard *g) {
  (void)g;
  return xm__fail(XM_E_NOT_IMPLEMENTED, "fault recovery: no context capture or __builtin_setjmp for this CPU");
}
#endif
