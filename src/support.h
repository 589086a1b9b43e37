/* What a back end may use of the front end: error recording and the cached system facts. */
#ifndef XMMAP_SUPPORT_H
#define XMMAP_SUPPORT_H

#include <stddef.h>

#include "xmmap/xmmap.h"

#if defined(__MINGW32__) && !defined(__clang__)
/* MinGW's printf family is C99 with __USE_MINGW_ANSI_STDIO. */
#define XM__PRINTF(f, a) __attribute__((format(gnu_printf, f, a)))
#elif defined(__GNUC__)
#define XM__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define XM__PRINTF(f, a)
#endif

/* A thread-local that a fault handler may touch: on ELF the initial-exec model, so that no access
   ever allocates (the general-dynamic model may allocate on a thread's first access in a library
   loaded with dlopen). */
#if defined(__GNUC__) && defined(__ELF__)
#define XM__TLS _Thread_local __attribute__((tls_model("initial-exec")))
#else
#define XM__TLS _Thread_local
#endif

/* Records status for this thread as "<xm_strerror(status)>: <detail>" (just the status text when
   fmt is NULL), clears xm_os_error(), and returns status. */
int xm__fail(int status, const char *fmt, ...) XM__PRINTF(2, 3);
/* Records a failed OS call: "<xm_strerror(status)>: <os text> (os error N) (in <call>)". */
int xm__fail_os(int status, int os_error, const char *call);
/* XM_E_OVERFLOW with crosvm's text: "address 0x<addr> offset by 0x<offset> would overflow". */
int xm__fail_overflow(size_t addr, size_t offset);

/* Read from the OS once, then cached. */
size_t xm__page_size(void);
/* The unit of mapping offsets and fixed addresses (64 KiB on Windows, the page on POSIX). */
size_t xm__granularity(void);

#endif /* XMMAP_SUPPORT_H */
