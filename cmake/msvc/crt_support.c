/* The static part of an MSVC CRT that Wine lacks, for the msvc leg: thread-locals and atexit. */
/*
 * A real MSVC CRT (libcmt / msvcrt.lib + vcruntime) links these into every program and DLL; Wine's
 * import libraries (libucrtbase.a, libwinecrt0.a) do not have them, so cmake/toolchains/msvc.cmake
 * links this object into every executable and DLL of the leg. It is not part of the installed
 * library: a user's MSVC CRT provides all of it.
 *
 * Thread-locals: clang-cl (like cl) compiles each _Thread_local access to "the block at index
 * _tls_index of this thread's TLS array, plus the variable's offset in the .tls section". The
 * loader fills both in when the image has a TLS directory (_tls_used, which lld-link finds by
 * name): it sets _tls_index and gives every thread a copy of the bytes from _tls_start to _tls_end.
 * The linker sorts ".tls$<suffix>" sections by suffix after ".tls" itself, so _tls_start (in
 * ".tls") comes before every variable (in ".tls$") and _tls_end (".tls$ZZZ") after them: the
 * template starts at the section's start, where the compiler's offsets count from.
 *
 * atexit: ucrtbase.dll exports only _crt_atexit (the table exit() runs); atexit itself is static
 * CRT code. Wine's headers declare it dllimport, so callers go through __imp_atexit: both names
 * are defined here, so no CRT header is included (it would declare atexit dllimport); the TLS
 * directory's layout is IMAGE_TLS_DIRECTORY64's.
 */
typedef void(__stdcall *tls_callback)(void *module, unsigned long reason, void *reserved);
struct tls_directory {
  unsigned long long start_of_raw_data, end_of_raw_data, address_of_index, address_of_callbacks;
  unsigned long size_of_zero_fill, characteristics;
};

unsigned long _tls_index = 0;

#pragma section(".tls", read, write)
#pragma section(".tls$ZZZ", read, write)
#pragma section(".CRT$XLA", read)
#pragma section(".CRT$XLZ", read)
#pragma section(".rdata$T", read)

__declspec(allocate(".tls")) char _tls_start = 0;
__declspec(allocate(".tls$ZZZ")) char _tls_end = 0;

/* The TLS callback list: empty (nothing between these two null pointers), null-terminated. */
__declspec(allocate(".CRT$XLA")) tls_callback __xl_a = 0;
__declspec(allocate(".CRT$XLZ")) tls_callback __xl_z = 0;

__declspec(allocate(".rdata$T")) const struct tls_directory _tls_used = {
    .start_of_raw_data = (unsigned long long)&_tls_start,
    .end_of_raw_data = (unsigned long long)&_tls_end,
    .address_of_index = (unsigned long long)&_tls_index,
    .address_of_callbacks = (unsigned long long)(&__xl_a + 1),
};

typedef void(__cdecl *exit_fn)(void);
int __cdecl _crt_atexit(exit_fn fn);
int __cdecl atexit(exit_fn fn);

int __cdecl atexit(exit_fn fn) { return _crt_atexit(fn) == 0 ? 0 : -1; }
int(__cdecl *const __imp_atexit)(exit_fn) = atexit;
