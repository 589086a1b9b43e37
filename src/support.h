/* What a back end may use of the front end: error recording and the cached system facts. */
#ifndef XMMAP_SUPPORT_H
#define XMMAP_SUPPORT_H

#include <stddef.h>

#include "xmmap/xmmap.h"

/* printf-style checking of the error formats. cl.exe has no attribute for it (its /analyze reads
   SAL's _Printf_format_string_ instead); clang-cl has gcc's. MinGW's printf family is C99 with
   __USE_MINGW_ANSI_STDIO. */
#if defined(_MSC_VER) && !defined(__clang__)
#define XM__PRINTF(f, a)
#elif defined(__MINGW32__) && !defined(__clang__)
#define XM__PRINTF(f, a) __attribute__((format(gnu_printf, f, a)))
#elif defined(__GNUC__) || defined(__clang__)
#define XM__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define XM__PRINTF(f, a)
#endif

/* A function the compiler must keep out of line (its frame is found by address or unwinding). */
#if defined(_MSC_VER)
#define XM__NOINLINE __declspec(noinline)
#elif defined(__GNUC__)
#define XM__NOINLINE __attribute__((noinline))
#else
#define XM__NOINLINE
#endif

/* A thread-local that a fault handler may touch: on ELF the initial-exec model, so that no access
   ever allocates (the general-dynamic model may allocate on a thread's first access in a library
   loaded with dlopen). MSVC's __declspec(thread) is the implicit-TLS model of the PE image's TLS
   directory, which never allocates on access either (and is what cl.exe has had longest). */
#if defined(_MSC_VER)
#define XM__TLS __declspec(thread)
#elif defined(__GNUC__) && defined(__ELF__)
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
