/* The POSIX back end's arena unit (src/os.h "arena"; xm__os_check_arena_descriptor is in
   shm_posix.c with the other descriptor checks). */
#include "posix.h"

size_t xm__os_arena_unit(void) { return xm__os_page_size(); }
