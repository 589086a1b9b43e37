/* Status texts and the per-thread record of the last failure (xm_errmsg, xm_os_error). */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

/* Written by failures inside fault hooks too (src/support.h XM__TLS). */
static XM__TLS char last_message[320];
static XM__TLS int last_os_error;

const char *xm_strerror(int status) {
  switch (status) {
  case XM_OK: return "success";
  case XM_E_ADD_FD_MAPPING_UNSUPPORTED: return "`add_fd_mapping` is unsupported";
  case XM_E_INVALID_ADDRESS: return "requested memory out of range";
  case XM_E_INVALID_ALIGNMENT: return "requested alignment is incompatible";
  case XM_E_INVALID_ARGUMENT: return "invalid argument provided when creating mapping";
  case XM_E_INVALID_OFFSET: return "requested offset is out of range of off_t";
  case XM_E_INVALID_RANGE: return "requested memory range spans past the end of the region";
  case XM_E_NOT_IMPLEMENTED: return "operation is not implemented on platform/architecture";
  case XM_E_NOT_PAGE_ALIGNED: return "requested memory is not page aligned";
  case XM_E_READ_TO_MEMORY: return "failed to read from file to memory";
  case XM_E_REMOVE_MAPPING_UNSUPPORTED: return "`remove_mapping` is unsupported";
  case XM_E_SYSTEM_CALL: return "mmap related system call failed";
  case XM_E_WRITE_FROM_MEMORY: return "failed to write from memory to file";
  case XM_E_OUT_OF_BOUNDS: return "address is out of bounds";
  case XM_E_OVERFLOW: return "address offset would overflow";
  case XM_E_NO_MEMORY: return "out of memory";
  case XM_E_FAULT: return "memory access faulted";
  case XM_E_EXISTS: return "requested fixed range is already in use";
  case XM_E_ACCESS: return "access not allowed by the mapping's protection";
  case XM_E_NO_ADDRESS: return "no free address range satisfies the placement";
  case XM_E_MAP_LIMIT: return "the limit on the number of mappings is reached";
  default: return "unknown xmmap status";
  }
}

const char *xm_errmsg(void) { return last_message; }

int xm_os_error(void) { return last_os_error; }

static int record(int status, int os_error, const char *fmt, va_list ap) XM__PRINTF(3, 0);
static int record(int status, int os_error, const char *fmt, va_list ap) {
  vsnprintf(last_message, sizeof last_message, fmt, ap);
  last_os_error = os_error;
  return status;
}

/* Records a message verbatim (crosvm's own texts carry no status prefix). */
static int record_text(int status, const char *fmt, ...) XM__PRINTF(2, 3);
static int record_text(int status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  record(status, 0, fmt, ap);
  va_end(ap);
  return status;
}

int xm__fail(int status, const char *fmt, ...) {
  if (!fmt) return record_text(status, "%s", xm_strerror(status));
  char detail[sizeof last_message];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  return record_text(status, "%s: %s", xm_strerror(status), detail);
}

int xm__fail_os(int status, int os_error, const char *call) {
  char text[160];
  xm__os_error_text(os_error, text, sizeof text);
  record_text(status, "%s: %s (os error %d) (in %s)", xm_strerror(status), text, os_error, call);
  last_os_error = os_error;
  return status;
}

int xm__fail_overflow(size_t addr, size_t offset) {
  return record_text(XM_E_OVERFLOW, "address 0x%zx offset by 0x%zx would overflow", addr, offset);
}

int xm__fail_out_of_bounds(size_t addr) {
  return record_text(XM_E_OUT_OF_BOUNDS, "address 0x%zx is out of bounds", addr);
}

int xm__fail_range(size_t offset, size_t count, size_t region_size) {
  return xm__fail(XM_E_INVALID_RANGE, "offset=%zu count=%zu region_size=%zu", offset, count, region_size);
}

int xm__fail_address(size_t offset, size_t count, size_t size) {
  return xm__fail(XM_E_INVALID_ADDRESS, "offset=%zu count=%zu size=%zu", offset, count, size);
}
