/** @file xmmap.hpp
    xmmap's optional C++17 face, header-only over xmmap.h: move-only owners, result<T> instead of
    exceptions (it builds with -fno-exceptions -fno-rtti), statuses as std::error_code in the
    "xmmap" category, std::span<std::byte> views in C++20 (a pointer + size view before).
    The accessors are inline calls of xmmap.h's inline fast paths: they cost what the C calls do.

      #include <xmmap/xmmap.hpp>
      auto m = xmmap::builder(1 << 20).build();
      if (!m) return fail(m.error().message(), xmmap::last_error_message());
      std::uint64_t v = 55;
      if (auto r = m->write_obj(0x1000, v); !r) ...  // r.error() == xmmap::errc::invalid_address

    Every owner is empty after a move from it or a failed factory; its C object is get(), and
    release() hands it over to C code. Owners of a region's memory (mapping, arena) must outlive
    what uses that region (a dirty tracker, a fault hook on it, region_ref copies). What is not
    wrapped here (the xm_slice functions) is the C call on get(). */
#ifndef XMMAP_XMMAP_HPP
#define XMMAP_XMMAP_HPP

#include <new>

#include "xmmap/xmmap_core.hpp"

namespace xmmap {

/* ---- facts --------------------------------------------------------------------------------------- */
inline std::size_t page_size() noexcept { return xm_page_size(); }
inline std::size_t allocation_granularity() noexcept { return xm_allocation_granularity(); }
inline std::size_t cacheline_size() noexcept { return xm_cacheline_size(); }
inline const char *version() noexcept { return xm_version(); }
inline const char *arena_strategy() noexcept { return xm_arena_strategy(); }
inline const char *icache_method() noexcept { return xm_icache_method(); }
/** errno / GetLastError() of this thread's last failure (xm_os_error). */
inline int last_os_error() noexcept { return xm_os_error(); }
/** The process's mapping count and the OS's limit (xm_map_count; not_implemented on Windows). */
struct map_count_info {
  std::size_t used = 0, limit = 0;
};
inline result<map_count_info> map_count() noexcept {
  map_count_info c;
  return detail::value_or_failure(xm_map_count(&c.used, &c.limit), c);
}

/* ---- regions ------------------------------------------------------------------------------------- */
/** A non-owning reference to a region (a mapping's, an arena's, an external one); it is valid while
    its owner lives. */
class region_ref {
public:
  constexpr region_ref() noexcept = default;
  constexpr explicit region_ref(xm_region *r) noexcept : r_(r) {}
  xm_region *get() const noexcept { return r_; }
  explicit operator bool() const noexcept { return r_ != nullptr; }

  void *data() const noexcept { return xm_region_ptr(r_); }
  std::size_t size() const noexcept { return xm_region_size(r_); }
  bytes view() const noexcept { return bytes_of(data(), size()); }
  /** Fault-safe copies (xm_region_read_safe / write_safe): the count copied, or errc::fault. */
  result<std::size_t> read_safe(std::size_t offset, bytes out) const noexcept {
    std::size_t copied = 0;
    return detail::value_or_failure(xm_region_read_safe(r_, out.data(), out.size(), offset, &copied), copied);
  }
  result<std::size_t> write_safe(std::size_t offset, const_bytes in) const noexcept {
    std::size_t copied = 0;
    return detail::value_or_failure(xm_region_write_safe(r_, in.data(), in.size(), offset, &copied), copied);
  }
  result<void> protect(std::size_t offset, std::size_t len, xm_prot prot) const noexcept {
    return result<void>(xm_region_protect(r_, offset, len, prot));
  }
  result<void> commit(std::size_t offset, std::size_t len, xm_prot prot) const noexcept {
    return result<void>(xm_region_commit(r_, offset, len, prot));
  }
  result<void> decommit(std::size_t offset, std::size_t len) const noexcept {
    return result<void>(xm_region_decommit(r_, offset, len));
  }
  result<void> msync(std::size_t offset, std::size_t len) const noexcept {
    return result<void>(xm_region_msync(r_, offset, len));
  }
  result<void> advise(std::size_t offset, std::size_t len, xm_advice advice) const noexcept {
    return result<void>(xm_region_advise(r_, offset, len, advice));
  }
  result<void> add_fd_mapping(std::size_t offset, std::size_t size, xm_descriptor d, std::uint64_t d_offset,
                              xm_prot prot) const noexcept {
    return result<void>(xm_region_add_fd_mapping(r_, offset, size, d, d_offset, prot));
  }
  result<void> remove_mapping(std::size_t offset, std::size_t size) const noexcept {
    return result<void>(xm_region_remove_mapping(r_, offset, size));
  }

private:
  xm_region *r_ = nullptr;
};

/** Memory the caller owns, seen as a region (xm_external_mapping_new); never unmapped by xmmap. */
class external_region : public detail::handle<xm_region, xm_region_free> {
public:
  using handle::handle;
  static result<external_region> create(void *memory, std::size_t size) noexcept {
    xm_region *r = nullptr;
    const std::uint64_t address = reinterpret_cast<std::uintptr_t>(memory);
    int rc = xm_external_mapping_new(address, size, &r);
    return detail::adopt<external_region>(rc, r);
  }
  region_ref region() const noexcept { return region_ref(get()); }
};

/* ---- shared memory ----------------------------------------------------------------------------- */
/** A shared-memory object (xm_shm): a memfd on Linux, a section on Windows. */
class shm : public detail::handle<xm_shm, xm_shm_free> {
public:
  using handle::handle;
  /** xm_shm_new_ex: flags XM_SHM_*, huge_page_size with XM_SHM_HUGE (0: the default size);
      flags 0 is xm_shm_new. */
  static result<shm> create(const char *debug_name, std::uint64_t size, unsigned flags = 0,
                            std::size_t huge_page_size = 0) noexcept {
    xm_shm *s = nullptr;
    return detail::adopt<shm>(xm_shm_new_ex(debug_name, size, flags, huge_page_size, &s), s);
  }
  /** Adopts a received descriptor (on failure the caller still owns it); size 0: query it. */
  static result<shm> from_descriptor(xm_descriptor d, std::uint64_t size = 0) noexcept {
    xm_shm *s = nullptr;
    return detail::adopt<shm>(xm_shm_from_descriptor(d, size, &s), s);
  }
  result<shm> clone() const noexcept {
    xm_shm *s = nullptr;
    return detail::adopt<shm>(xm_shm_clone(get(), &s), s);
  }
  /** A descriptor nobody can write through (see xm_shm_clone_readonly for what each OS promises). */
  result<shm> clone_readonly() const noexcept {
    xm_shm *s = nullptr;
    return detail::adopt<shm>(xm_shm_clone_readonly(get(), &s), s);
  }
  std::uint64_t size() const noexcept { return xm_shm_size(get()); }
  /** The fd / section handle; stays owned here. */
  xm_descriptor descriptor() const noexcept { return xm_shm_descriptor(get()); }
  result<unsigned> seals() const noexcept {
    unsigned s = 0;
    return detail::value_or_failure(xm_shm_get_seals(get(), &s), s);
  }
  result<void> add_seals(unsigned seals) noexcept { return result<void>(xm_shm_add_seals(get(), seals)); }
};

/* ---- the mapping ------------------------------------------------------------------------------- */
/** A mapping (xm_mapping). The accessors are xmmap.h's inline fast paths: one compare, then the
    copy. Like the C calls, they must not be called on an empty mapping. */
class mapping : public detail::handle<xm_mapping, xm_mapping_free> {
public:
  using handle::handle;

  void *data() const noexcept { return xm_mapping_ptr(get()); }
  std::size_t size() const noexcept { return xm_mapping_size(get()); }
  /** The whole mapping's bytes, unchecked (as xm_mapping_ptr). */
  bytes view() const noexcept { return bytes_of(data(), size()); }
  region_ref region() const noexcept { return region_ref(xm_mapping_region(get())); }

  /** Reads / writes a whole trivially copyable object at offset (unaligned is fine). */
  template <class T> result<void> read_obj(std::size_t offset, T &object) const noexcept {
    static_assert(std::is_trivially_copyable_v<T>, "read_obj: T must be trivially copyable");
    return result<void>(xm_mapping_read_obj(get(), &object, sizeof object, offset));
  }
  template <class T> result<void> write_obj(std::size_t offset, const T &object) const noexcept {
    static_assert(std::is_trivially_copyable_v<T>, "write_obj: T must be trivially copyable");
    return result<void>(xm_mapping_write_obj(get(), &object, sizeof object, offset));
  }
  /** One access of 1, 2, 4 or 8 bytes at a naturally aligned offset (a full fence before a write). */
  template <class T> result<void> read_obj_volatile(std::size_t offset, T &object) const noexcept {
    static_assert(std::is_trivially_copyable_v<T> &&
                      (sizeof(T) == 1 || sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8),
                  "read_obj_volatile: a trivially copyable T of 1, 2, 4 or 8 bytes");
    return result<void>(xm_mapping_read_obj_volatile(get(), &object, sizeof object, offset));
  }
  template <class T> result<void> write_obj_volatile(std::size_t offset, const T &object) const noexcept {
    static_assert(std::is_trivially_copyable_v<T> &&
                      (sizeof(T) == 1 || sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8),
                  "write_obj_volatile: a trivially copyable T of 1, 2, 4 or 8 bytes");
    return result<void>(xm_mapping_write_obj_volatile(get(), &object, sizeof object, offset));
  }
  /** Copies min(buffer size, size - offset) bytes; the count copied. */
  result<std::size_t> read_slice(std::size_t offset, bytes out) const noexcept {
    std::size_t copied = 0;
    int rc = xm_mapping_read_slice(get(), out.data(), out.size(), offset, &copied);
    return detail::value_or_failure(rc, copied);
  }
  result<std::size_t> write_slice(std::size_t offset, const_bytes in) const noexcept {
    std::size_t copied = 0;
    int rc = xm_mapping_write_slice(get(), in.data(), in.size(), offset, &copied);
    return detail::value_or_failure(rc, copied);
  }
  /** The checked view [offset, offset + count) (xm_mapping_get_slice). */
  result<bytes> get_slice(std::size_t offset, std::size_t count) const noexcept {
    xm_slice s{nullptr, 0};
    int rc = xm_mapping_get_slice(get(), offset, count, &s);
    return detail::value_or_failure(rc, bytes_of(s.addr, s.size));
  }
  /** Fault-safe copies: a fault inside the mapping gives errc::fault instead of a crash. */
  result<std::size_t> read_slice_safe(std::size_t offset, bytes out) const noexcept {
    std::size_t copied = 0;
    int rc = xm_mapping_read_slice_safe(get(), out.data(), out.size(), offset, &copied);
    return detail::value_or_failure(rc, copied);
  }
  result<std::size_t> write_slice_safe(std::size_t offset, const_bytes in) const noexcept {
    std::size_t copied = 0;
    int rc = xm_mapping_write_slice_safe(get(), in.data(), in.size(), offset, &copied);
    return detail::value_or_failure(rc, copied);
  }

  result<void> protect(std::size_t offset, std::size_t len, xm_prot prot) noexcept {
    return result<void>(xm_mapping_protect(get(), offset, len, prot));
  }
  result<void> msync() const noexcept { return result<void>(xm_mapping_msync(get())); }
  result<void> sync_range(std::size_t offset, std::size_t len, xm_sync mode) const noexcept {
    return result<void>(xm_mapping_sync_range(get(), offset, len, mode));
  }
  /** Cleans the cache lines of the range to the point of coherency, then a barrier. */
  result<void> flush(std::size_t offset, std::size_t len) const noexcept {
    return result<void>(xm_mapping_flush_region(get(), offset, len));
  }
  result<void> flush_all() const noexcept { return result<void>(xm_mapping_flush_all(get())); }
  result<void> advise(std::size_t offset, std::size_t len, xm_advice advice) const noexcept {
    return result<void>(xm_mapping_advise(get(), offset, len, advice));
  }
  /** The advice shortcuts: MADV_HUGEPAGE, MADV_DONTFORK, MADV_REMOVE, read-ahead, dropping pages. */
  result<void> use_hugepages() const noexcept { return result<void>(xm_mapping_use_hugepages(get())); }
  result<void> use_dontfork() const noexcept { return result<void>(xm_mapping_use_dontfork(get())); }
  result<void> remove_range(std::size_t offset, std::size_t len) const noexcept {
    return result<void>(xm_mapping_remove_range(get(), offset, len));
  }
  result<void> async_prefetch(std::size_t offset, std::size_t len) const noexcept {
    return result<void>(xm_mapping_async_prefetch(get(), offset, len));
  }
  result<void> drop_page_cache(std::size_t offset, std::size_t len) const noexcept {
    return result<void>(xm_mapping_drop_page_cache(get(), offset, len));
  }
  result<void> lock_on_fault(std::size_t offset, std::size_t len) const noexcept {
    return result<void>(xm_mapping_lock_on_fault(get(), offset, len));
  }
  result<void> unlock(std::size_t offset, std::size_t len) const noexcept {
    return result<void>(xm_mapping_unlock(get(), offset, len));
  }
};

/** The builder: xm_builder, a plain value, with chainable setters. A shm given to from_shm must
    live until build() returns; a file may be closed after it. */
class builder {
public:
  explicit builder(std::size_t size) noexcept : b_(xm_builder_new(size)) {}
  builder &from_file(xm_descriptor file) noexcept {
    xm_builder_from_file(&b_, file);
    return *this;
  }
  builder &from_shm(const shm &s) noexcept {
    xm_builder_from_shm(&b_, s.get());
    return *this;
  }
  builder &from_descriptor(xm_descriptor d) noexcept {
    xm_builder_from_descriptor(&b_, d);
    return *this;
  }
  builder &offset(std::uint64_t value) noexcept {
    xm_builder_offset(&b_, value);
    return *this;
  }
  builder &protection(xm_prot prot) noexcept {
    xm_builder_protection(&b_, prot);
    return *this;
  }
  builder &align(std::uint64_t alignment) noexcept {
    xm_builder_align(&b_, alignment);
    return *this;
  }
  builder &populate() noexcept {
    xm_builder_populate(&b_);
    return *this;
  }
  builder &dontdump() noexcept {
    xm_builder_dontdump(&b_);
    return *this;
  }
  /** xm_builder_private (a C++ keyword): MAP_PRIVATE / FILE_MAP_COPY. */
  builder &copy_on_write() noexcept {
    xm_builder_private(&b_);
    return *this;
  }
  builder &to_end_of_file() noexcept {
    xm_builder_to_end_of_file(&b_);
    return *this;
  }
  builder &guard_pages(std::size_t pages) noexcept {
    xm_builder_guard_pages(&b_, pages);
    return *this;
  }
  builder &fixed_noreplace(void *addr) noexcept {
    xm_builder_fixed_noreplace(&b_, addr);
    return *this;
  }
  builder &address_range(std::uintptr_t lo, std::uintptr_t hi) noexcept {
    xm_builder_address_range(&b_, lo, hi);
    return *this;
  }
  builder &huge_pages(std::size_t page_size) noexcept {
    xm_builder_huge_pages(&b_, page_size);
    return *this;
  }

  result<mapping> build() const noexcept {
    xm_mapping *m = nullptr;
    return detail::adopt<mapping>(xm_builder_build(&b_, &m), m);
  }
  /** The C value, for calls this class does not wrap. */
  xm_builder &get() noexcept { return b_; }
  const xm_builder &get() const noexcept { return b_; }

private:
  xm_builder b_;
};

/* ---- the arena --------------------------------------------------------------------------------- */
/** Reserved address space that memory and descriptors are mapped into (xm_arena). */
class arena : public detail::handle<xm_arena, xm_arena_free> {
public:
  using handle::handle;
  static result<arena> create(std::size_t size) noexcept {
    xm_arena *a = nullptr;
    return detail::adopt<arena>(xm_arena_new(size, &a), a);
  }
  /** Inside [lo, hi), its base a multiple of align (0: the granularity). */
  static result<arena> create_in(std::size_t size, std::uintptr_t lo, std::uintptr_t hi,
                                 std::uint64_t align = 0) noexcept {
    xm_arena *a = nullptr;
    return detail::adopt<arena>(xm_arena_new_in(size, lo, hi, align, &a), a);
  }
  /** The unit of piece offsets and sizes. */
  std::size_t granularity() const noexcept { return xm_arena_granularity(get()); }
  region_ref region() const noexcept { return region_ref(xm_arena_region(get())); }
  void *data() const noexcept { return region().data(); }
  std::size_t size() const noexcept { return region().size(); }

  result<void> add_anon(std::size_t offset, std::size_t size, xm_prot prot) noexcept {
    return result<void>(xm_arena_add_anon(get(), offset, size, prot));
  }
  result<void> add_fd(std::size_t offset, std::size_t size, xm_descriptor d, std::uint64_t d_offset,
                      xm_prot prot) noexcept {
    return result<void>(xm_arena_add_fd(get(), offset, size, d, d_offset, prot));
  }
  /** add_fd with the shared-memory object's descriptor. */
  result<void> add_shm(std::size_t offset, std::size_t size, const shm &s, std::uint64_t shm_offset,
                       xm_prot prot) noexcept {
    return add_fd(offset, size, s.descriptor(), shm_offset, prot);
  }
  /** Back to inaccessible reserved space: later accesses fault. */
  result<void> remove(std::size_t offset, std::size_t size) noexcept {
    return result<void>(xm_arena_remove(get(), offset, size));
  }
};

/* ---- code buffers ------------------------------------------------------------------------------ */
/** A JIT code buffer (xm_code): write at write_ptr() between begin_write and end_write, run from
    exec_ptr(). */
class code : public detail::handle<xm_code, xm_code_free> {
public:
  using handle::handle;
  /** flags XM_CODE_*; near_addr: NULL, or the execute view within +-2 GiB of it. */
  static result<code> create(std::size_t size, unsigned flags = 0, const void *near_addr = nullptr) noexcept {
    xm_code *c = nullptr;
    return detail::adopt<code>(xm_code_new(size, flags, near_addr, &c), c);
  }
  void *write_ptr() const noexcept { return xm_code_write_ptr(get()); }
  void *exec_ptr() const noexcept { return xm_code_exec_ptr(get()); }
  std::size_t size() const noexcept { return xm_code_size(get()); }
  /** The write view's bytes. */
  bytes writable() const noexcept { return bytes_of(write_ptr(), size()); }
  const char *strategy() const noexcept { return xm_code_strategy(get()); }
  result<void> begin_write(std::size_t offset, std::size_t len) noexcept {
    return result<void>(xm_code_begin_write(get(), offset, len));
  }
  /** Executable, and the instruction cache synchronised for exactly that range. */
  result<void> end_write(std::size_t offset, std::size_t len) noexcept {
    return result<void>(xm_code_end_write(get(), offset, len));
  }
};
inline result<void> icache_sync(const void *exec_addr, std::size_t len) noexcept {
  return result<void>(xm_icache_sync(exec_addr, len));
}

/* ---- fault hooks ------------------------------------------------------------------------------- */
/** A fault hook (xm_fault_hook) calling a C++ callable: xm_fault_action(const xm_fault &). The
    callable runs inside the signal handler / exception dispatch, so it must be async-signal-safe;
    the path to it allocates nothing: add() moves it once into a heap block that stays at one
    address for the hook's life (moving the owner moves only the pointer). Destruction removes the
    hook (waiting for running calls, as xm_fault_hook_remove does), then destroys the callable: do
    not destroy the owner from inside its own callable. */
class fault_hook {
public:
  fault_hook() noexcept = default;
  fault_hook(fault_hook &&other) noexcept
      : h_(std::exchange(other.h_, nullptr)), callable_(std::exchange(other.callable_, nullptr)),
        destroy_(std::exchange(other.destroy_, nullptr)) {}
  fault_hook &operator=(fault_hook &&other) noexcept {
    if (this != &other) {
      reset();
      h_ = std::exchange(other.h_, nullptr);
      callable_ = std::exchange(other.callable_, nullptr);
      destroy_ = std::exchange(other.destroy_, nullptr);
    }
    return *this;
  }
  fault_hook(const fault_hook &) = delete;
  fault_hook &operator=(const fault_hook &) = delete;
  ~fault_hook() { reset(); }

  /** Calls fn for memory faults in [addr, addr + len); errc::no_memory when its block cannot be
      allocated. */
  template <class F> static result<fault_hook> add(const void *addr, std::size_t len, F &&fn) noexcept {
    using Fn = std::decay_t<F>;
    static_assert(std::is_invocable_r_v<xm_fault_action, Fn &, const xm_fault &>,
                  "a fault hook's callable is xm_fault_action(const xm_fault &)");
    Fn *callable = new (std::nothrow) Fn(std::forward<F>(fn));
    if (!callable) return detail::failure{XM_E_NO_MEMORY};
    fault_hook owner;
    owner.callable_ = callable;
    owner.destroy_ = [](void *p) noexcept { delete static_cast<Fn *>(p); };
    int rc = xm_fault_hook_add(addr, len, &trampoline<Fn>, callable, &owner.h_);
    if (rc != XM_OK) return detail::failure{rc};
    return result<fault_hook>(std::move(owner));
  }
  /** The C hook with its own function and user pointer (nothing to destroy but the hook). */
  static result<fault_hook> add(const void *addr, std::size_t len, xm_fault_fn fn, void *user) noexcept {
    fault_hook owner;
    int rc = xm_fault_hook_add(addr, len, fn, user, &owner.h_);
    if (rc != XM_OK) return detail::failure{rc};
    return result<fault_hook>(std::move(owner));
  }

  xm_fault_hook *get() const noexcept { return h_; }
  explicit operator bool() const noexcept { return h_ != nullptr; }
  /** Hands the hook to the caller, who removes it with xm_fault_hook_remove. The callable is then
      never destroyed (it must outlive the hook, whose user pointer it is): its block is leaked. */
  xm_fault_hook *release() noexcept {
    callable_ = nullptr;
    destroy_ = nullptr;
    return std::exchange(h_, nullptr);
  }
  /** Removes the hook, then destroys the callable. */
  void reset() noexcept {
    xm_fault_hook_remove(std::exchange(h_, nullptr));
    if (destroy_) destroy_(callable_);
    callable_ = nullptr;
    destroy_ = nullptr;
  }

private:
  template <class Fn> static xm_fault_action trampoline(const xm_fault *fault, void *user) noexcept {
    return (*static_cast<Fn *>(user))(*fault);
  }
  xm_fault_hook *h_ = nullptr;
  void *callable_ = nullptr;
  void (*destroy_)(void *) noexcept = nullptr;
};
/** XM_OK while the library's fault handler is in front, errc::exists when another is. */
inline result<void> fault_handler_check() noexcept { return result<void>(xm_fault_handler_check()); }
inline result<void> fault_handler_reinstall() noexcept { return result<void>(xm_fault_handler_reinstall()); }

/* ---- write tracking ---------------------------------------------------------------------------- */
/** A write tracker (xm_dirty) over a range of a region; destroy it before the region's owner. */
class dirty : public detail::handle<xm_dirty, xm_dirty_free> {
public:
  using handle::handle;
  static result<dirty> create(region_ref r, std::size_t offset, std::size_t len, unsigned flags = 0) noexcept {
    xm_dirty *d = nullptr;
    return detail::adopt<dirty>(xm_dirty_new(r.get(), offset, len, flags, &d), d);
  }
  /** Sets bit i % 64 of bitmap[i / 64] for each page i written since the last collect, re-arms
      them, and gives the count of pages reported. */
  result<std::size_t> collect(span<std::uint64_t> bitmap) noexcept {
    std::size_t count = 0;
    int rc = xm_dirty_collect(get(), bitmap.data(), bitmap.size() * 64u, &count);
    return detail::value_or_failure(rc, count);
  }
  std::size_t page_size() const noexcept { return xm_dirty_page_size(get()); }
  /** "uffd-wp" or "protect". */
  const char *strategy() const noexcept { return xm_dirty_strategy(get()); }
};

} // namespace xmmap

#endif /* XMMAP_XMMAP_HPP */
