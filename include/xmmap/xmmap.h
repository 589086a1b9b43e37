/** @file xmmap.h
    xmmap: one memory-mapping API for emulators and VMMs on Linux and Windows. */
#ifndef XMMAP_XMMAP_H
#define XMMAP_XMMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "xmmap/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Branch hints and the cold attribute for the inline fast paths (gcc and clang). */
#if defined(__GNUC__) || defined(__clang__)
#define XM__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define XM__COLD __attribute__((cold))
#else
#define XM__UNLIKELY(x) (x)
#define XM__COLD
#endif

/* A cast that C++ compilers do not warn about (the header is compiled as C and as C++). */
#ifdef __cplusplus
#define XM__CAST(type, value) static_cast<type>(value)
#else
#define XM__CAST(type, value) ((type)(value))
#endif

/* XM_API marks exported functions. Static linking needs no define; the shared library's CMake
   target adds XMMAP_DLL for its users so that Windows imports through __declspec(dllimport). */
#if defined(_WIN32)
#if defined(XMMAP_BUILDING_DLL)
#define XM_API __declspec(dllexport)
#elif defined(XMMAP_DLL)
#define XM_API __declspec(dllimport)
#else
#define XM_API
#endif
#elif defined(__GNUC__) && defined(XMMAP_BUILDING)
#define XM_API __attribute__((visibility("default")))
#else
#define XM_API
#endif

/* ------------------------------------------------------------------------------------------ */
/** @name Status and errors
 * Every function that can fail returns XM_OK or a negative XM_E_* status. The values are ABI. */
/** @{ */
enum {
  XM_OK = 0,
  XM_E_ADD_FD_MAPPING_UNSUPPORTED = -1,  /**< the region cannot take descriptor mappings */
  XM_E_INVALID_ADDRESS = -2,             /**< requested memory out of range */
  XM_E_INVALID_ALIGNMENT = -3,           /**< alignment not a power of two, or misaligned access */
  XM_E_INVALID_ARGUMENT = -4,            /**< NULL or otherwise invalid argument */
  XM_E_INVALID_OFFSET = -5,              /**< offset out of range of off_t, or not mappable */
  XM_E_INVALID_RANGE = -6,               /**< offset/count span past the end of the region */
  XM_E_NOT_IMPLEMENTED = -7,             /**< not available on this platform or architecture */
  XM_E_NOT_PAGE_ALIGNED = -8,            /**< offset not a multiple of the page / granularity */
  XM_E_READ_TO_MEMORY = -9,              /**< reading a file into memory failed */
  XM_E_REMOVE_MAPPING_UNSUPPORTED = -10, /**< the region cannot remove mappings */
  XM_E_SYSTEM_CALL = -11,                /**< an OS call failed: see xm_os_error() */
  XM_E_WRITE_FROM_MEMORY = -12,          /**< writing memory to a file failed */
  XM_E_OUT_OF_BOUNDS = -13,              /**< a slice's end lies outside its memory */
  XM_E_OVERFLOW = -14,                   /**< address arithmetic would overflow */
  XM_E_NO_MEMORY = -15,                  /**< the library's own allocation failed */
  XM_E_FAULT = -16,                      /**< a fault-safe copy hit a page that is gone */
  XM_E_EXISTS = -17,                     /**< a no-replace fixed mapping found the range in use */
  XM_E_ACCESS = -18,                     /**< the mapping's protection forbids this access */
  XM_E_NO_ADDRESS = -19,                 /**< no free address range satisfies the placement asked for */
  XM_E_MAP_LIMIT = -20,                  /**< the OS's limit on the number of mappings is reached */
};
/** Fixed text for a status (crosvm's wording); never NULL, also for unknown values. */
XM_API const char *xm_strerror(int status);
/** This thread's last failure with its details; "" when this thread has not failed yet. */
XM_API const char *xm_errmsg(void);
/** errno / GetLastError() of this thread's last failure; 0 when that failure made no OS call. */
XM_API int xm_os_error(void);
/** @} */

/* ------------------------------------------------------------------------------------------ */
/** @name System facts (each computed once, thread-safe) */
/** @{ */
/** The page size (sysconf / GetNativeSystemInfo). */
XM_API size_t xm_page_size(void);
/** 64 KiB on Windows; the page size on POSIX. Offsets and arena ranges are multiples of it. */
XM_API size_t xm_allocation_granularity(void);
/** The cache-flush granule, never larger than the real line. */
XM_API size_t xm_cacheline_size(void);
/** "posix" or "windows". */
XM_API const char *xm_backend_name(void);
/** One of "clwb", "clflushopt", "clflush", "dc cvac", "dcbst", "cbo.clean", "none".
    The environment variable XMMAP_FLUSH=clflush|clflushopt|clwb forces an x86 variant. */
XM_API const char *xm_flush_method(void);
/** Where xm_cacheline_size() came from: "cpuid", "ctr_el0", "hwprobe", "sysconf", "auxv",
    "GetLogicalProcessorInformation" or "assumed". */
XM_API const char *xm_cacheline_source(void);
/** How arenas are built here: "mmap" (POSIX), "placeholders" (Windows 10 1803+) or "split
    reservations" (Windows without placeholders, e.g. Wine). */
XM_API const char *xm_arena_strategy(void);
/** How many memory mappings the process has (*used) and the most the OS allows (*limit): Linux
    counts /proc/self/maps and reads vm.max_map_count. XM_E_NOT_IMPLEMENTED where that cannot be
    known: Windows (no such limit) and QEMU user mode (which emulates /proc/self/maps). A mapping
    or protection change the kernel refuses because the count is exhausted fails with
    XM_E_MAP_LIMIT, naming vm.max_map_count, the count and the limit. */
XM_API int xm_map_count(size_t *used, size_t *limit);
/** The library's version, "MAJOR.MINOR.PATCH". */
XM_API const char *xm_version(void);
/** @} */

/* ------------------------------------------------------------------------------------------ */
/** @name Descriptors and protection */
/** @{ */
#ifdef _WIN32
typedef void *xm_descriptor; /**< a HANDLE */
#else
typedef int xm_descriptor; /**< a file descriptor */
#endif
/** Access a mapping allows: XM_PROT_* bits. */
typedef unsigned xm_prot;
#define XM_PROT_NONE 0u       /**< no access: every access faults */
#define XM_PROT_READ 1u       /**< reads */
#define XM_PROT_WRITE 2u      /**< writes (Windows views that write can also read) */
#define XM_PROT_READ_WRITE 3u /**< reads and writes: the builder's default */
#define XM_PROT_EXEC 4u       /**< instruction fetches, where the OS allows them (see xm_code for JITs) */
/** True when every access in other is allowed by self. */
XM_API bool xm_prot_allows(xm_prot self, xm_prot other);
/** @} */

/* ------------------------------------------------------------------------------------------ */
/** @name Shared memory: a memfd on Linux (shm_open elsewhere), a pagefile section on Windows.
 * Descriptors and handles the library creates are close-on-exec / non-inheritable. */
/** @{ */
/** A shared-memory object: a descriptor and its size. */
typedef struct xm_shm xm_shm;
/** Creates a shared-memory object of size bytes. debug_name shows in /proc/self/fd on Linux
    (at most 249 bytes); Windows sections are unnamed and cannot be empty (size 0 fails there with
    XM_E_SYSTEM_CALL, ERROR_INVALID_PARAMETER). size must be <= INT64_MAX. */
XM_API int xm_shm_new(const char *debug_name, uint64_t size, xm_shm **out);
/** Commit on demand: Windows makes a SEC_RESERVE section whose views start reserved, and pages
    are usable only once xm_region_commit has committed them (an access before faults: use the
    fault-safe copies, which give XM_E_FAULT; Wine does not enforce it), and protection changes
    of uncommitted pages fail (VirtualProtect). Linux memfd memory is always committed on first
    touch, so there the flag changes nothing. Not with XM_SHM_HUGE. */
#define XM_SHM_LAZY_COMMIT 1u
/** Huge pages of huge_page_size bytes (0 = the system's default): a MFD_HUGETLB memfd with that
    size's MFD_HUGE_* flag on Linux, a SEC_LARGE_PAGES section (committed at once, with
    SeLockMemoryPrivilege enabled) on Windows. size must be a multiple of the huge page size
    (XM_E_NOT_PAGE_ALIGNED). XM_E_NOT_IMPLEMENTED, with the reason, where that size does not
    exist, where no pool of such pages is configured (Linux: HugePages_Total 0 and no
    overcommit; see /sys/kernel/mm/hugepages), or where the OS accepted the request without
    giving large pages (Wine): the object is probed for what it really got. Linux reserves the
    pages when a mapping is made, which fails when too few are free. */
#define XM_SHM_HUGE 2u
#define XM_SHM_EXEC 4u /**< may be mapped with XM_PROT_EXEC; without it that is XM_E_ACCESS */
/** xm_shm_new with XM_SHM_* flags: XM_SHM_EXEC makes an object that may be mapped executable
    (Linux: a memfd without the exec seal where vm.memfd_noexec allows; Windows: a
    PAGE_EXECUTE_READWRITE section). Guest RAM should not have it. XM_E_INVALID_ARGUMENT for
    unknown flags, for XM_SHM_LAZY_COMMIT | XM_SHM_HUGE (large pages are committed at once), and
    for a huge_page_size that is not 0 or a power of two, or is given without XM_SHM_HUGE. */
XM_API int xm_shm_new_ex(const char *debug_name, uint64_t size, unsigned flags, size_t huge_page_size, xm_shm **out);
/** Duplicates the descriptor (close-on-exec / non-inheritable); same size. */
XM_API int xm_shm_clone(const xm_shm *shm, xm_shm **out);
/** A descriptor to hand to a less trusted process, through which nobody can write the object;
    the clone is xm_shm_free'd like any other and keeps the object alive.
    Linux: the memfd reopened read-only (/proc/self/fd) after F_SEAL_FUTURE_WRITE was added to the
    object (kept if it already has F_SEAL_WRITE or F_SEAL_FUTURE_WRITE). The seal is the object's,
    for everyone: writable shared mappings that exist keep writing and every reader sees it, but
    no new writable shared mapping of the object can be made by anyone, the owner included
    (XM_E_SYSTEM_CALL, EPERM). XM_E_INVALID_ARGUMENT when the object cannot take the seal
    (F_SEAL_SEAL without a write seal); XM_E_NOT_IMPLEMENTED for objects that have no seals
    (shm_open) and kernels without F_SEAL_FUTURE_WRITE (before 5.1).
    Windows: a FILE_MAP_READ | SECTION_QUERY duplicate. xm_shm_new's sections carry a security
    descriptor that grants nobody anything (a named section, as Chromium makes them: unnamed
    objects are not access-checked), so the handle cannot be raised to write with DuplicateHandle;
    the library checks that it cannot and says XM_E_NOT_IMPLEMENTED otherwise (a section made
    elsewhere and adopted with xm_shm_from_descriptor). Handles that exist keep their rights.
    Both: a shared writable mapping of the clone is XM_E_ACCESS (the builder refuses it before any
    OS call); copy-on-write mappings (xm_builder_private) of it work and write nothing back. The
    receiver adopts the descriptor with xm_shm_from_descriptor (a read-only descriptor is accepted
    there when the memfd is write-sealed); its writable shared mappings then fail in the OS
    (XM_E_SYSTEM_CALL: EACCES / ERROR_ACCESS_DENIED). */
XM_API int xm_shm_clone_readonly(const xm_shm *shm, xm_shm **out);
/** Adopts a received descriptor (fd or section handle): on success shm owns it, on failure the
    caller still does. size 0 = query it (fstat / the section's size, page-rounded on Windows). */
XM_API int xm_shm_from_descriptor(xm_descriptor d, uint64_t size, xm_shm **out);
/** The size given at creation (or adoption). */
XM_API uint64_t xm_shm_size(const xm_shm *shm);
/** The fd, or on Windows the section handle; stays owned by shm. */
XM_API xm_descriptor xm_shm_descriptor(const xm_shm *shm);
/** Closes the descriptor; mappings made from it stay valid. */
XM_API void xm_shm_free(xm_shm *shm);
#define XM_SEAL_SEAL 1u          /**< no more seals (F_SEAL_SEAL) */
#define XM_SEAL_SHRINK 2u        /**< the size cannot shrink (F_SEAL_SHRINK) */
#define XM_SEAL_GROW 4u          /**< the size cannot grow (F_SEAL_GROW) */
#define XM_SEAL_WRITE 8u         /**< no writes, no writable shared mappings (F_SEAL_WRITE) */
#define XM_SEAL_FUTURE_WRITE 16u /**< no new writable mappings (F_SEAL_FUTURE_WRITE) */
/** XM_E_NOT_IMPLEMENTED where the system has no seals (Windows, shm_open). */
XM_API int xm_shm_get_seals(const xm_shm *shm, unsigned *seals);
/** Adds XM_SEAL_* bits (F_ADD_SEALS); XM_E_NOT_IMPLEMENTED where the object cannot be sealed. */
XM_API int xm_shm_add_seals(xm_shm *shm, unsigned seals);
/** @} */

/* ------------------------------------------------------------------------------------------ */
/** @name Building a mapping (crosvm MemoryMappingBuilder)
 * No descriptor means an anonymous shared mapping. Size 0 is a valid empty mapping (no OS call,
 * pointer NULL). Validation runs before any OS call. */
/** @{ */
/** A mapping made by xm_builder_build. */
typedef struct xm_mapping xm_mapping;
/** A builder is a plain value: copy it, reuse it. Its members are private; its size is ABI. */
typedef struct xm_builder {
  struct {
    size_t size;
    uint64_t offset;
    uint64_t align;
    xm_descriptor descriptor;
    const xm_shm *shm;
    void *fixed_addr;
    size_t guard_pages;
    size_t huge_page_size;
    unsigned source; /* anonymous, file, shm or descriptor */
    xm_prot prot;
    unsigned flags;
  } _private;
  uint64_t _range[2];    /* private: xm_builder_address_range's lo and hi */
  uint64_t _reserved[6]; /* _range and _reserved keep the size of the former _reserved[8] */
} xm_builder;
/** A builder for an anonymous read-write mapping of size bytes. */
XM_API xm_builder xm_builder_new(size_t size);
/** Maps a file: a file fd, or on Windows a file HANDLE (the mapping keeps its own duplicate). */
XM_API void xm_builder_from_file(xm_builder *b, xm_descriptor file);
/** Maps a shared-memory object. */
XM_API void xm_builder_from_shm(xm_builder *b, const xm_shm *shm);
/** POSIX: any mappable fd; Windows: a section (file-mapping) handle. */
XM_API void xm_builder_from_descriptor(xm_builder *b, xm_descriptor d);
/** Offset into the file or object; default 0. */
XM_API void xm_builder_offset(xm_builder *b, uint64_t offset);
/** Default XM_PROT_READ_WRITE. */
XM_API void xm_builder_protection(xm_builder *b, xm_prot prot);
/** Aligns the mapping's base to a power of two (on Windows too). */
XM_API void xm_builder_align(xm_builder *b, uint64_t alignment);
/** Pre-faults the pages (anonymous, shm and file mappings). */
XM_API void xm_builder_populate(xm_builder *b);
/** Excludes the mapping from core dumps (MADV_DONTDUMP); opt-in, unlike crosvm. */
XM_API void xm_builder_dontdump(xm_builder *b);
/** Copy-on-write: MAP_PRIVATE / FILE_MAP_COPY; writes never reach the file. */
XM_API void xm_builder_private(xm_builder *b);
/** Size = file size - offset (fstat / GetFileSizeEx at build time). */
XM_API void xm_builder_to_end_of_file(xm_builder *b);
/** pages inaccessible pages before and after the mapping. */
XM_API void xm_builder_guard_pages(xm_builder *b, size_t pages);
/** Maps exactly at addr, failing with XM_E_EXISTS if any of the range is in use. */
XM_API void xm_builder_fixed_noreplace(xm_builder *b, void *addr);
/** Places the mapping, its guard pages included, inside [lo, hi) (the whole granularity units
    there), with the builder's alignment; XM_E_NO_ADDRESS at build time when no such range is free.
    lo >= hi, a range too small for the mapping and its guards, or a fixed address as well, are
    XM_E_INVALID_ARGUMENT at build time. */
XM_API void xm_builder_address_range(xm_builder *b, uintptr_t lo, uintptr_t hi);
/** Huge pages of page_size bytes (0 = the system default): MAP_HUGETLB / SEC_LARGE_PAGES. */
XM_API void xm_builder_huge_pages(xm_builder *b, size_t page_size);
/** Validates the options (before any OS call), then maps. */
XM_API int xm_builder_build(const xm_builder *b, xm_mapping **out);
/** @} */

/* ------------------------------------------------------------------------------------------ */
/** @name Volatile slices (crosvm VolatileSlice); the layout of struct iovec on POSIX */
/** @{ */
/** A view of size bytes at addr that others may change at any time. */
typedef struct xm_slice {
  void *addr;  /**< the first byte */
  size_t size; /**< the length in bytes */
} xm_slice;
/** [offset, offset + count) of s: XM_E_OVERFLOW or XM_E_OUT_OF_BOUNDS with details. */
XM_API int xm_slice_sub(xm_slice s, size_t offset, size_t count, xm_slice *out);
/** s advanced by count bytes. */
XM_API int xm_slice_offset(xm_slice s, size_t count, xm_slice *out);
/** Sets every byte of the slice to value. */
XM_API void xm_slice_write_bytes(xm_slice s, uint8_t value);
/** Copies min(s.size, len) bytes out of the slice; returns the count. */
XM_API size_t xm_slice_copy_to(xm_slice s, void *buf, size_t len);
/** Copies min(s.size, len) bytes into the slice; returns the count. */
XM_API size_t xm_slice_copy_from(xm_slice s, const void *buf, size_t len);
/** Copies min(src.size, dst.size) bytes; overlap-safe. */
XM_API size_t xm_slice_copy_to_slice(xm_slice src, xm_slice dst);
/** Whether every byte is zero. */
XM_API bool xm_slice_is_all_zero(xm_slice s);
/** @} */

/* ------------------------------------------------------------------------------------------ */
/** @name The mapping (crosvm MemoryMapping)
 * Threads: accessors, safe copies, flush, msync and advice may run from many threads at once, and
 * xm_mapping_protect may run concurrently with all of them (not with another protect of the same
 * mapping): the library lowers its own limits before the OS protection and raises them after, so
 * nothing it checks ever allows more than the OS. A safe copy that races a lowering gets
 * XM_E_ACCESS or XM_E_FAULT; an inline accessor or a slice racing a lowering of the same bytes is
 * the caller's race (it may fault). Freeing must not race with anything, and freeing twice is
 * undefined, as with free(). The checked accessors below are inline: one compare beyond the copy. */
/** @{ */

/** The documented public prefix of struct xm_mapping that the inline accessors read. A limit is
    the mapping's size when the whole mapping allows that access, else 0 (slow, exact path). */
typedef struct xm_mapping_prefix {
  unsigned char *base; /**< xm_mapping_ptr() */
  size_t size;         /**< xm_mapping_size() */
  size_t read_limit;   /**< size if the whole mapping is readable, else 0 */
  size_t write_limit;  /**< size if the whole mapping is writable, else 0 */
} xm_mapping_prefix;

/** The first byte of the mapping (NULL for an empty mapping). */
XM_API void *xm_mapping_ptr(const xm_mapping *m);
/** The size asked for. */
XM_API size_t xm_mapping_size(const xm_mapping *m);
/** Unmaps and releases everything the mapping holds (its duplicate handle on Windows). */
XM_API void xm_mapping_free(xm_mapping *m);
/** Durable flush of the whole mapping (msync MS_SYNC / FlushViewOfFile + FlushFileBuffers).
    XM_OK with nothing written for memory that has no file behind it or that cannot have been
    changed through this mapping: anonymous, private (copy-on-write pages never reach the file),
    read-only and no-access mappings. XM_E_SYSTEM_CALL when the OS fails (EIO, ENOMEM). */
XM_API int xm_mapping_msync(const xm_mapping *m);
/** Cleans every cache line of [offset, offset + len) to the point of coherency, then a barrier.
    XM_E_INVALID_RANGE, XM_E_ACCESS (the range must be readable), XM_E_NOT_IMPLEMENTED (no flush
    instruction on this CPU). Not fault-safe: on a file mapping truncated under it, the flush
    instructions fault like loads (SIGBUS / EXCEPTION_IN_PAGE_ERROR). */
XM_API int xm_mapping_flush_region(const xm_mapping *m, size_t offset, size_t len);
/** xm_mapping_flush_region over the whole mapping. */
XM_API int xm_mapping_flush_all(const xm_mapping *m);
/** One access of size 1, 2, 4 or 8 at a naturally aligned offset, preceded by a full fence.
    XM_E_INVALID_ARGUMENT (m or obj NULL), XM_E_INVALID_ADDRESS, XM_E_INVALID_ALIGNMENT,
    XM_E_ACCESS. */
XM_API int xm_mapping_write_obj_volatile(const xm_mapping *m, const void *obj, size_t size, size_t offset);
/** One read of size 1, 2, 4 or 8 at a naturally aligned offset; statuses as for the write. */
XM_API int xm_mapping_read_obj_volatile(const xm_mapping *m, void *obj, size_t size, size_t offset);

/* The out-of-line halves of the checked accessors: the exact status for what the fast path
   does not take. Not for direct use. */
XM_API XM__COLD int xm__mapping_write_slice_slow(const xm_mapping *m, const void *buf, size_t len, size_t offset,
                                                 size_t *copied);
XM_API XM__COLD int xm__mapping_read_slice_slow(const xm_mapping *m, void *buf, size_t len, size_t offset,
                                                size_t *copied);
/* For objects: XM_OK when the access may go ahead, 1 when there is nothing to copy (size 0), or
   the failure status. */
XM_API XM__COLD int xm__mapping_check_obj(const xm_mapping *m, size_t size, size_t offset, xm_prot need);
XM_API XM__COLD int xm__mapping_get_slice_slow(const xm_mapping *m, size_t offset, size_t count, xm_slice *out);

/* The inline fast paths' range test: whether [offset, offset + size) lies inside [0, limit).
   With gcc and clang it is one overflow-checked add and one compare, which measured 25% faster
   than two compares in a tight access loop; elsewhere the plain form. Not for direct use. */
static inline bool xm__fits(size_t offset, size_t size, size_t limit) {
#if defined(__GNUC__) || defined(__clang__)
  size_t end;
  return !__builtin_add_overflow(offset, size, &end) && end <= limit && size != 0;
#else
  return offset < limit && size <= limit - offset;
#endif
}

/** Copies min(len, size - offset) bytes from buf at offset; offset > size is XM_E_INVALID_ADDRESS.
    m must not be NULL (undefined behaviour on this hot path). copied may be NULL. */
static inline int xm_mapping_write_slice(const xm_mapping *m, const void *buf, size_t len, size_t offset,
                                         size_t *copied) {
  const xm_mapping_prefix *p = XM__CAST(const xm_mapping_prefix *, XM__CAST(const void *, m));
  if (offset < p->write_limit) {
    size_t n = p->write_limit - offset < len ? p->write_limit - offset : len;
    memcpy(p->base + offset, buf, n);
    if (copied) *copied = n;
    return XM_OK;
  }
  return xm__mapping_write_slice_slow(m, buf, len, offset, copied);
}
/** Copies min(len, size - offset) bytes at offset into buf; offset > size is XM_E_INVALID_ADDRESS. */
static inline int xm_mapping_read_slice(const xm_mapping *m, void *buf, size_t len, size_t offset, size_t *copied) {
  const xm_mapping_prefix *p = XM__CAST(const xm_mapping_prefix *, XM__CAST(const void *, m));
  if (offset < p->read_limit) {
    size_t n = p->read_limit - offset < len ? p->read_limit - offset : len;
    memcpy(buf, p->base + offset, n);
    if (copied) *copied = n;
    return XM_OK;
  }
  return xm__mapping_read_slice_slow(m, buf, len, offset, copied);
}
/** Writes the whole object at offset (unaligned is fine) or fails with XM_E_INVALID_ADDRESS. */
static inline int xm_mapping_write_obj(const xm_mapping *m, const void *obj, size_t size, size_t offset) {
  const xm_mapping_prefix *p = XM__CAST(const xm_mapping_prefix *, XM__CAST(const void *, m));
  if (XM__UNLIKELY(!xm__fits(offset, size, p->write_limit))) {
    /* The check takes no pointer to obj, so the caller's object can stay in registers. */
    int rc = xm__mapping_check_obj(m, size, offset, XM_PROT_WRITE);
    if (rc != XM_OK) return rc < 0 ? rc : XM_OK;
  }
  memcpy(p->base + offset, obj, size);
  return XM_OK;
}
/** Reads the whole object at offset (unaligned is fine) or fails with XM_E_INVALID_ADDRESS. */
static inline int xm_mapping_read_obj(const xm_mapping *m, void *obj, size_t size, size_t offset) {
  const xm_mapping_prefix *p = XM__CAST(const xm_mapping_prefix *, XM__CAST(const void *, m));
  if (XM__UNLIKELY(!xm__fits(offset, size, p->read_limit))) {
    int rc = xm__mapping_check_obj(m, size, offset, XM_PROT_READ);
    if (rc != XM_OK) return rc < 0 ? rc : XM_OK;
  }
  memcpy(obj, p->base + offset, size);
  return XM_OK;
}
/** The slice [offset, offset + count): XM_E_OVERFLOW or XM_E_OUT_OF_BOUNDS with details, XM_E_ACCESS
    when a page of it cannot be read (a slice is plain memory: it must not be written where the
    mapping is read-only). m and out must not be NULL. */
static inline int xm_mapping_get_slice(const xm_mapping *m, size_t offset, size_t count, xm_slice *out) {
  const xm_mapping_prefix *p = XM__CAST(const xm_mapping_prefix *, XM__CAST(const void *, m));
  if (offset < p->read_limit && count <= p->read_limit - offset) {
    out->addr = p->base + offset;
    out->size = count;
    return XM_OK;
  }
  return xm__mapping_get_slice_slow(m, offset, count, out);
}
/** Reads *ptr from offset: xm_mapping_read_obj with the object's size. */
#define XM_READ_OBJ(m, offset, ptr) xm_mapping_read_obj((m), (ptr), sizeof *(ptr), (offset))
/** Writes *ptr at offset: xm_mapping_write_obj with the object's size. */
#define XM_WRITE_OBJ(m, offset, ptr) xm_mapping_write_obj((m), (ptr), sizeof *(ptr), (offset))

/** Like xm_mapping_read_slice, but a fault inside the mapping (file truncated, I/O error, page
    made inaccessible) gives XM_E_FAULT with the faulting offset instead of killing the process.
    POSIX: the first safe copy installs a SIGBUS/SIGSEGV handler that recovers only faults inside
    this thread's active safe copy and passes every other fault to the handler it replaced; a
    handler the program installs later must likewise chain to the one it replaces. Windows: a
    vectored exception handler, which leaves every other exception alone. */
XM_API int xm_mapping_read_slice_safe(const xm_mapping *m, void *buf, size_t len, size_t offset, size_t *copied);
/** Like xm_mapping_write_slice, but a fault inside the mapping gives XM_E_FAULT. */
XM_API int xm_mapping_write_slice_safe(const xm_mapping *m, const void *buf, size_t len, size_t offset, size_t *copied);

/** How far xm_mapping_sync_range takes the data. */
typedef enum xm_sync {
  XM_SYNC_ASYNC, /**< MS_ASYNC / FlushViewOfFile: schedule write-back */
  XM_SYNC_SYNC,  /**< MS_SYNC / FlushViewOfFile + FlushFileBuffers: durable on return */
} xm_sync;
/** Flushes [offset, offset + len) to the file; the start is rounded down to the page. */
XM_API int xm_mapping_sync_range(const xm_mapping *m, size_t offset, size_t len, xm_sync mode);
/** Lowers the protection of a range, or raises it again up to what the mapping was built with. */
XM_API int xm_mapping_protect(xm_mapping *m, size_t offset, size_t len, xm_prot prot);
/** @} */

/* ------------------------------------------------------------------------------------------ */
/** @name Regions, external mappings and the arena (crosvm MappedRegion, ExternalMapping,
 * MemoryMappingArena) */
/** @{ */
/** The MappedRegion interface: a mapping's, an arena's or an external mapping's memory. */
typedef struct xm_region xm_region;
/** The mapping's region; lives and dies with the mapping. */
XM_API xm_region *xm_mapping_region(xm_mapping *m);
/** The region's first byte. */
XM_API void *xm_region_ptr(const xm_region *r);
/** The region's size. */
XM_API size_t xm_region_size(const xm_region *r);
/** XM_E_ADD_FD_MAPPING_UNSUPPORTED unless the region is an arena. */
XM_API int xm_region_add_fd_mapping(xm_region *r, size_t offset, size_t size, xm_descriptor d, uint64_t d_offset,
                                    xm_prot prot);
/** XM_E_REMOVE_MAPPING_UNSUPPORTED unless the region is an arena. */
XM_API int xm_region_remove_mapping(xm_region *r, size_t offset, size_t size);
/** Durable flush of [offset, offset + size); XM_E_INVALID_ADDRESS when it leaves the region. */
XM_API int xm_region_msync(const xm_region *r, size_t offset, size_t size);
/** Commits [offset, offset + len) (page multiples inside the region): the memory is usable and
    counted against the system's commit limit. Windows: VirtualAlloc(MEM_COMMIT) with prot, which
    makes the pages of an XM_SHM_LAZY_COMMIT object's views usable (a committed page of a section is
    committed for every view of it) and may be repeated. Linux: memory is committed on first touch
    anyway; this pre-faults it (MADV_POPULATE_WRITE when prot has XM_PROT_WRITE, else
    MADV_POPULATE_READ; nothing where the kernel lacks them, before 5.14) and leaves the
    protection as it is. prot is the access the pages have, at most what they were mapped or added
    with: a mapping's current protection must allow it (XM_E_ACCESS). An arena range must be mapped
    all through (XM_E_INVALID_ADDRESS naming the first unmapped offset). */
XM_API int xm_region_commit(xm_region *r, size_t offset, size_t len, xm_prot prot);
/** Gives back the memory of [offset, offset + len) (page multiples inside the region).
    Linux: punches a hole in the shared memory behind it (MADV_REMOVE): every mapping of the object
    reads zeros there afterwards and the pages are freed; private memory and read-only views cannot
    do that (XM_E_NOT_IMPLEMENTED); qemu-user accepts the advice and ignores it. Windows cannot decommit a section's committed pages: their contents are
    discarded with VirtualAlloc(MEM_RESET), so the pages stay committed and usable, the commit
    charge stays, and the contents are undefined (old bytes or zeros) until written again; views of
    files give XM_E_NOT_IMPLEMENTED. An arena range must be mapped all through. */
XM_API int xm_region_decommit(xm_region *r, size_t offset, size_t len);
/** Wraps memory the caller owns; never unmapped by xmmap. Free with xm_region_free. */
XM_API int xm_external_mapping_new(uint64_t ptr, size_t size, xm_region **out);
/** Frees only regions made by xm_external_mapping_new. */
XM_API void xm_region_free(xm_region *r);

/** Reserved address space into which memory and descriptors are mapped.
    Windows: a view cannot be unmapped in part, so a change that covers a mapped piece partly
    unmaps its view and maps the remainders again; other threads' accesses to the remainders fault
    for that moment, and the library's fault handler (installed with the first arena) has them
    retried once the change is done (under Wine such an access may also read zeros for a moment:
    Wine makes a view as anonymous memory before mapping the section over it). Without
    placeholders (Wine 8: "split reservations", xm_arena_strategy()) a change frees the reserved
    addresses its new view needs: an allocation of someone else that takes them in between is
    named in the message (XM_E_SYSTEM_CALL, ERROR_INVALID_ADDRESS), reserved around, never freed by
    the arena, and the only part of the range that is not the arena's. */
typedef struct xm_arena xm_arena;
/** Reserves size bytes of inaccessible address space. */
XM_API int xm_arena_new(size_t size, xm_arena **out);
/** Like xm_arena_new, with the reservation inside [lo, hi) (the whole granularity units there),
    its base a multiple of align (0: the granularity; else a power of two). XM_E_INVALID_ARGUMENT
    for lo >= hi, a range smaller than size rounded up to the granularity, or a bad align;
    XM_E_NO_ADDRESS (naming the range, size and alignment) when no such range is free. Size 0 is
    checked the same way and gives an empty arena that takes no address space. Linux: free gaps of
    /proc/self/maps taken with MAP_FIXED_NOREPLACE; Windows: VirtualAlloc2 with
    MEM_ADDRESS_REQUIREMENTS where it honours them, else a VirtualQuery walk. */
XM_API int xm_arena_new_in(size_t size, uintptr_t lo, uintptr_t hi, uint64_t align, xm_arena **out);
/** The unit of the arena's piece offsets and sizes (and of descriptor offsets): the page on
    POSIX and on Windows with placeholders (MEM_REPLACE_PLACEHOLDER lifts the 64 KiB rule), the
    allocation granularity (64 KiB) with split reservations (Wine; xm_arena_strategy says which). It replaces xm_allocation_granularity()
    for arenas: an offset that is not a multiple is XM_E_NOT_PAGE_ALIGNED, and sizes are rounded up
    to it. A descriptor whose object has huge pages (hugetlbfs, MFD_HUGETLB, an xm_shm made with
    XM_SHM_HUGE) needs offset, size and descriptor offset in multiples of its huge page size
    (XM_E_NOT_PAGE_ALIGNED naming it). 0 for NULL. */
XM_API size_t xm_arena_granularity(const xm_arena *a);
/** Maps anonymous shared memory over [offset, offset + size), replacing what was there. */
XM_API int xm_arena_add_anon(xm_arena *a, size_t offset, size_t size, xm_prot prot);
/** Maps [d_offset, d_offset + size) of d's object over [offset, offset + size). On Windows d is a
    section handle. The descriptor of a live xm_shm (xm_shm_descriptor) is known to the library:
    the object's policies apply before any OS call (XM_PROT_EXEC needs XM_SHM_EXEC, a read-only
    clone maps only read-only: XM_E_ACCESS) and no OS call checks it; any other descriptor is
    checked first (fstat and fcntl on POSIX, which also find hugetlbfs objects). */
XM_API int xm_arena_add_fd(xm_arena *a, size_t offset, size_t size, xm_descriptor d, uint64_t d_offset, xm_prot prot);
/** Returns the range to inaccessible reserved space: later access faults. */
XM_API int xm_arena_remove(xm_arena *a, size_t offset, size_t size);
/** The arena's region; lives and dies with the arena. */
XM_API xm_region *xm_arena_region(xm_arena *a);
/** Unmaps everything and releases the reservation. */
XM_API void xm_arena_free(xm_arena *a);
/** @} */

/* ------------------------------------------------------------------------------------------ */
/** @name Fault hooks, region protection and write tracking
 * One process-wide fault dispatcher (POSIX: a SIGSEGV + SIGBUS handler; Windows: a vectored
 * exception handler) serves the program's hooks and the library's own fault-safe copies. A memory
 * fault goes to, in order: the hooks covering the address (most recently added first, until one
 * returns XM_FAULT_RETRY), the fault-safe copy running on the faulting thread (XM_E_FAULT), and
 * whatever handled faults before the library. See the README's "Fault hooks" for what a hook may
 * call and the alternate-stack size it needs. */
/** @{ */
/** One memory fault, as the faulting thread's hook sees it. */
typedef struct xm_fault {
  void *addr;     /**< the faulting data address (the instruction's for a fetch) */
  void *pc;       /**< the faulting instruction where the OS reports it, else NULL */
  void *context;  /**< ucontext_t * / CONTEXT *: a hook may change it before XM_FAULT_RETRY */
  xm_prot access; /**< XM_PROT_READ, _WRITE or _EXEC where the CPU says which, else 0 */
} xm_fault;
/** What a hook did with a fault. */
typedef enum xm_fault_action {
  XM_FAULT_RETRY, /**< fixed (mapping, protection or context): resume the faulting thread */
  XM_FAULT_PASS,  /**< not handled: try the next hook, then the rest of the dispatch */
} xm_fault_action;
/** A hook: runs in the faulting thread, inside its signal handler / exception dispatch. */
typedef xm_fault_action (*xm_fault_fn)(const xm_fault *fault, void *user);
typedef struct xm_fault_hook xm_fault_hook;
/** Calls fn for memory faults in [addr, addr + len) (len > 0). Installs the dispatcher. */
XM_API int xm_fault_hook_add(const void *addr, size_t len, xm_fault_fn fn, void *user, xm_fault_hook **out);
/** Stops dispatching to h and frees it; returns when no other thread runs h's fn. From inside h's
    own fn it returns at once (its own call ends when fn returns). NULL is a no-op. */
XM_API void xm_fault_hook_remove(xm_fault_hook *h);
/** XM_OK while the library's handler is in front (installing it first if it was not yet),
    XM_E_EXISTS when another handler was installed over it. */
XM_API int xm_fault_handler_check(void);
/** Puts the library's handler back in front, chaining to the handler found there. */
XM_API int xm_fault_handler_reinstall(void);

/** Fault-safe copies for any region (a mapping's, an arena's, external memory): min(len, size -
    offset) bytes; offset > size is XM_E_INVALID_ADDRESS; a page that faults (gone, removed from an
    arena, or not accessible) gives XM_E_FAULT with the faulting offset after the hooks had their
    turn (a hook that maps the page lets the copy complete). *copied (may be NULL) gets the count. */
XM_API int xm_region_read_safe(const xm_region *r, void *buf, size_t len, size_t offset, size_t *copied);
XM_API int xm_region_write_safe(const xm_region *r, const void *buf, size_t len, size_t offset, size_t *copied);
/** Changes the protection of [offset, offset + len) of a region: a mapping's as
    xm_mapping_protect; an arena's piece by piece, never above what each piece was added with,
    all or nothing; memory the caller owns (external) as asked. */
XM_API int xm_region_protect(xm_region *r, size_t offset, size_t len, xm_prot prot);

/** A write tracker: the pages of a region range written since the last collect. */
typedef struct xm_dirty xm_dirty;
/** Tracks [offset, offset + len) of r (whole pages; flags 0). XM_E_EXISTS when another tracker
    covers any of it. The tracker must be freed before its region. Strategy: "uffd-wp" where the
    kernel offers it, else "protect"; the environment variable XMMAP_DIRTY=protect (or uffd-wp)
    forces one. External memory is taken as read-write until xm_region_protect changes it. */
XM_API int xm_dirty_new(xm_region *r, size_t offset, size_t len, unsigned flags, xm_dirty **out);
/** Reports the pages written since creation or the last collect and re-arms them: page i of the
    range is bit i % 64 of bitmap[i / 64]; *count (may be NULL) = pages reported. nbits must be at
    least the tracked page count. Every write is reported at the latest by the first collect that
    starts after the write completed; a page may be reported without having been written. */
XM_API int xm_dirty_collect(xm_dirty *d, uint64_t *bitmap, size_t nbits, size_t *count);
/** The size of one tracked page. */
XM_API size_t xm_dirty_page_size(const xm_dirty *d);
/** "uffd-wp" (Linux userfaultfd write-protect, collected by PAGEMAP_SCAN) or "protect". */
XM_API const char *xm_dirty_strategy(const xm_dirty *d);
/** Stops tracking (the region's protection is what its owner set) and frees d. */
XM_API void xm_dirty_free(xm_dirty *d);
/** @} */

/* ------------------------------------------------------------------------------------------ */
/** @name Advice and locking (crosvm MemoryMappingUnix, MappedRegion::madvise) */
/** @{ */
/** Portable advice: MADV_* on Linux, the native equivalent (or XM_E_NOT_IMPLEMENTED) on Windows. */
typedef enum xm_advice {
  XM_ADVICE_NORMAL,
  XM_ADVICE_RANDOM,
  XM_ADVICE_SEQUENTIAL,
  XM_ADVICE_WILLNEED,
  XM_ADVICE_DONTNEED,
  XM_ADVICE_REMOVE,
  XM_ADVICE_DONTFORK,
  XM_ADVICE_DOFORK,
  XM_ADVICE_HUGEPAGE,
  XM_ADVICE_NOHUGEPAGE,
  XM_ADVICE_DONTDUMP,
  XM_ADVICE_DODUMP,
  XM_ADVICE_MERGEABLE,
  XM_ADVICE_UNMERGEABLE,
  XM_ADVICE_COLD,
  XM_ADVICE_PAGEOUT,
  XM_ADVICE_POPULATE_READ,
  XM_ADVICE_POPULATE_WRITE,
} xm_advice;
/** Advice on [offset, offset + len); XM_E_INVALID_RANGE with details when it leaves the mapping. */
XM_API int xm_mapping_advise(const xm_mapping *m, size_t offset, size_t len, xm_advice advice);
/** Advice on [offset, offset + len) of a region; XM_E_INVALID_ADDRESS when it leaves it. */
XM_API int xm_region_advise(const xm_region *r, size_t offset, size_t len, xm_advice advice);
/** MADV_HUGEPAGE on mappings of at least the PMD size; a no-op below it. */
XM_API int xm_mapping_use_hugepages(const xm_mapping *m);
/** MADV_DONTFORK: children of fork() do not get the mapping. */
XM_API int xm_mapping_use_dontfork(const xm_mapping *m);
/** Frees the backing store of the range (MADV_REMOVE): later reads return zeros. */
XM_API int xm_mapping_remove_range(const xm_mapping *m, size_t offset, size_t count);
/** Starts read-ahead (MADV_WILLNEED / PrefetchVirtualMemory). */
XM_API int xm_mapping_async_prefetch(const xm_mapping *m, size_t offset, size_t count);
/** Drops the range's pages from this mapping (MADV_DONTNEED / MEM_RESET on pagefile views). */
XM_API int xm_mapping_drop_page_cache(const xm_mapping *m, size_t offset, size_t count);
/** mlock2(MLOCK_ONFAULT); on Windows VirtualLock, which locks at once. */
XM_API int xm_mapping_lock_on_fault(const xm_mapping *m, size_t offset, size_t count);
/** munlock / VirtualUnlock. */
XM_API int xm_mapping_unlock(const xm_mapping *m, size_t offset, size_t count);
/** @} */

/* ------------------------------------------------------------------------------------------ */
/** @name Executable memory for JITs
 * A code buffer is memory a JIT writes machine code into and then runs. Strategies, best first,
 * chosen by probe when the buffer is made:
 *  - "dual view": one memory object mapped twice, read-write at xm_code_write_ptr() and
 *    read-execute at xm_code_exec_ptr(); begin/end write make no system call (W^X holds always).
 *  - "toggle": one view flipped between read-write and read-execute. Protection is per page:
 *    other threads must not run code on pages being written, and overlapping begin_writes on one
 *    page are counted so that it turns executable when the last writer ends.
 *  - "rwx": one read-write-execute view, only with XM_CODE_ALLOW_RWX when nothing else works.
 * Code that another thread may already be running: after end_write that thread must execute a
 * context-synchronising instruction before it runs the new code (aarch64: an ISB, which any
 * exception return or branch through a function pointer after a barrier gives; x86: a
 * serialising instruction, e.g. a locked one it does anyway) — or replace code only where no
 * thread can be running it. */
/** @{ */
typedef struct xm_code xm_code;
#define XM_CODE_DUAL_VIEW 1u /**< demand separate write and execute views (W^X) */
#define XM_CODE_ALLOW_RWX 2u /**< allow one read-write-execute view when nothing else works */
#define XM_CODE_TOGGLE 4u    /**< demand the single view that flips protection */
/** A code buffer of size (> 0) bytes, rounded up to whole pages. flags: XM_CODE_*; DUAL_VIEW and
    TOGGLE together are XM_E_INVALID_ARGUMENT. near_addr: NULL, or the execute view lies entirely
    within +-2 GiB of it (x86-64 rel32 calls and jumps reach it), else XM_E_NO_ADDRESS. A buffer
    starts writable: the first begin_write is optional. */
XM_API int xm_code_new(size_t size, unsigned flags, const void *near_addr, xm_code **out);
/** Where to write code. */
XM_API void *xm_code_write_ptr(const xm_code *c);
/** Where to run it: equal to the write pointer unless the strategy is "dual view". */
XM_API void *xm_code_exec_ptr(const xm_code *c);
/** The buffer's size (whole pages). */
XM_API size_t xm_code_size(const xm_code *c);
/** Makes [offset, offset + len) writable ("toggle": read-write; otherwise nothing to do). */
XM_API int xm_code_begin_write(xm_code *c, size_t offset, size_t len);
/** Makes [offset, offset + len) executable and synchronises the instruction cache for exactly
    that range of the execute view. */
XM_API int xm_code_end_write(xm_code *c, size_t offset, size_t len);
/** "dual view", "toggle" or "rwx". */
XM_API const char *xm_code_strategy(const xm_code *c);
/** Unmaps the buffer. */
XM_API void xm_code_free(xm_code *c);
/** Makes instructions written at [exec_addr, exec_addr + len) visible to instruction fetches on
    every CPU of this process (data cache cleaned, instruction cache invalidated, barriers). */
XM_API int xm_icache_sync(const void *exec_addr, size_t len);
/** How xm_icache_sync does it: "coherent" (x86: nothing to do), "dc cvau + ic ivau",
    "cacheflush", "riscv_flush_icache", "icbi", "FlushInstructionCache" or "builtin". */
XM_API const char *xm_icache_method(void);
/** @} */

#ifdef __cplusplus
}
#endif
#endif /* XMMAP_XMMAP_H */
