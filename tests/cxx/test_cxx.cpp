/* The C++ consumer test: every owner of xmmap.hpp made, used, moved and destroyed (and what it
   held shown freed: its address range taken again, its descriptor gone), failures mapped to
   std::error_code in the "xmmap" category. Built as C++17 and C++20 with -fno-exceptions -fno-rtti
   under strict warnings (tests/CMakeLists.txt), run on every target that has a C++ compiler. */
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "xmmap/xmmap.hpp"

static int checks, failures;

/* A check that reports and goes on, so that one run shows every failure. */
#define CHECK(cond) check(!!(cond), #cond, __LINE__)
static void check(bool ok, const char *what, int line) {
  ++checks;
  if (ok) return;
  ++failures;
  std::printf("test_cxx.cpp:%d: CHECK(%s) failed (last xmmap error: %s)\n", line, what, xmmap::last_error_message());
}

/* A result that must have succeeded; its value for the caller. */
#define OK(expr) ok_or_report((expr), #expr, __LINE__)
template <class R> static R ok_or_report(R r, const char *what, int line) {
  check(static_cast<bool>(r), what, line);
  if (!r) std::printf("  -> %s: %s\n", r.error().message().c_str(), xmmap::last_error_message());
  return r;
}

/* The unit of placement and arena offsets on every OS (64 KiB on Windows). */
static std::size_t unit() { return xmmap::allocation_granularity(); }

/* The host-valgrind leg sets XMMAP_VALGRIND=1. */
static bool under_valgrind() {
  const char *v = std::getenv("XMMAP_VALGRIND");
  return v && *v && std::strcmp(v, "0") != 0;
}

/* Whether [addr, addr + size) is free: a fixed no-replace mapping can take it (and gives it back). */
static bool range_is_free(void *addr, std::size_t size) {
  auto m = xmmap::builder(size).fixed_noreplace(addr).build();
  return m && m->data() == addr;
}

static void errors_are_error_codes() {
  auto m = OK(xmmap::builder(unit()).build());
  std::uint64_t v = 0;
  auto r = m->read_obj(m->size(), v);
  CHECK(!r && r.status() == XM_E_INVALID_ADDRESS);
  std::error_code ec = r.error();
  CHECK(ec == xmmap::errc::invalid_address);
  CHECK(ec.category() == xmmap::category());
  CHECK(std::string(ec.category().name()) == "xmmap");
  CHECK(ec.message() == xm_strerror(XM_E_INVALID_ADDRESS));
  CHECK(std::strlen(xmmap::last_error_message()) > 0);
  CHECK(xmmap::make_error_code(XM_OK) == std::error_code());
  CHECK(!xmmap::make_error_code(XM_OK));
  CHECK(xmmap::make_error_code(XM_E_FAULT) == xmmap::errc::fault);

  /* a failed factory: the status, the portable condition, and an empty owner */
  auto c = xmmap::code::create(0);
  CHECK(!c && c.error() == xmmap::errc::invalid_argument);
  CHECK(c.error() == std::errc::invalid_argument);
  CHECK(!c.value() && c->get() == nullptr);
  auto bad = xmmap::builder(unit()).align(3).build();
  CHECK(!bad && !*bad);
  CHECK(std::error_code(xmmap::errc::no_memory) == std::errc::not_enough_memory);
  CHECK(std::error_code(xmmap::errc::exists) == std::errc::file_exists);
  CHECK(std::error_code(xmmap::errc::overflow).default_error_condition().category() == xmmap::category());
}

static void mapping_owner() {
  auto made = OK(xmmap::builder(2 * unit()).build());
  xmmap::mapping m = std::move(made).value();
  CHECK(m && m.size() == 2 * unit() && m.data() != nullptr);
  CHECK(m.view().data() == m.data() && m.view().size() == m.size());
  void *addr = m.data();

  /* objects, volatile objects, slices through byte views */
  const std::uint64_t v = 0x1122334455667788u;
  std::uint64_t back = 0;
  CHECK(OK(m.write_obj(8, v)) && OK(m.read_obj(8, back)) && back == v);
  std::uint32_t w = 7, w_back = 0;
  CHECK(OK(m.write_obj_volatile(16, w)) && OK(m.read_obj_volatile(16, w_back)) && w_back == 7);
  CHECK(m.write_obj_volatile(17, w).error() == xmmap::errc::invalid_alignment);
  unsigned char out[32], in[32];
  for (unsigned i = 0; i < sizeof out; i++)
    out[i] = static_cast<unsigned char>(i + 1);
  auto wrote = OK(m.write_slice(m.size() - 16, xmmap::bytes_of(out)));
  CHECK(*wrote == 16); /* min(len, size - offset) */
  auto read = OK(m.read_slice(m.size() - 16, xmmap::bytes_of(in)));
  CHECK(*read == 16 && std::memcmp(in, out, 16) == 0);
  CHECK(m.read_slice(m.size() + 1, xmmap::bytes_of(in)).error() == xmmap::errc::invalid_address);
  std::vector<unsigned char> vec(64, 0x5a);
  CHECK(OK(m.write_slice(0, xmmap::bytes_of(vec.data(), vec.size()))) && OK(m.read_slice_safe(0, xmmap::bytes_of(in))));
  CHECK(in[0] == 0x5a && in[31] == 0x5a);
  CHECK(*OK(m.write_slice_safe(0, xmmap::bytes_of(out))) == sizeof out);
  auto slice = OK(m.get_slice(4, 8));
  CHECK(slice->data() == static_cast<std::byte *>(addr) + 4 && slice->size() == 8);
  CHECK(m.get_slice(m.size(), 1).error() == xmmap::errc::out_of_bounds);

  /* protection, sync, flush, advice, region */
  CHECK(OK(m.protect(0, m.size(), XM_PROT_READ)));
  CHECK(m.write_obj(0, v).error() == xmmap::errc::access);
  CHECK(m.write_obj(0, v).error() == std::errc::permission_denied);
  CHECK(OK(m.protect(0, m.size(), XM_PROT_READ_WRITE)) && OK(m.write_obj(0, v)));
  CHECK(OK(m.msync()) && OK(m.sync_range(0, m.size(), XM_SYNC_ASYNC)));
  auto flushed = m.flush(0, 64); /* 32-bit Arm cannot clean to the point of coherency */
  CHECK(flushed || flushed.error() == xmmap::errc::not_implemented);
  auto advised = m.advise(0, m.size(), XM_ADVICE_WILLNEED);
  CHECK(advised || advised.error() == xmmap::errc::not_implemented);
  auto prefetched = m.async_prefetch(0, m.size());
  CHECK(prefetched || prefetched.error() == xmmap::errc::not_implemented);
  auto dropped = m.drop_page_cache(0, xmmap::page_size()); /* anonymous memory: zeros afterwards */
  CHECK(dropped || dropped.error() == xmmap::errc::not_implemented);
  CHECK(xmmap::cacheline_size() > 0 && xmmap::arena_strategy() != nullptr && xmmap::icache_method() != nullptr);
  xmmap::region_ref r = m.region();
  CHECK(r.data() == addr && r.size() == m.size());

  /* moving hands the mapping over; the moved-from owner is empty */
  xmmap::mapping moved(std::move(m));
  CHECK(!m && m.get() == nullptr && moved.data() == addr); // NOLINT(bugprone-use-after-move)
  xmmap::mapping assigned;
  assigned = std::move(moved);
  CHECK(!moved && assigned.data() == addr); // NOLINT(bugprone-use-after-move)
  CHECK(!range_is_free(addr, 2 * unit()));
  assigned = xmmap::mapping(); /* assigning frees what was held */
  CHECK(range_is_free(addr, 2 * unit()));

  /* release() gives the C object to C code */
  auto again = OK(xmmap::builder(unit()).build());
  xm_mapping *raw = again->release();
  CHECK(!again.value() && raw != nullptr);
  xm_mapping_free(raw);
}

static void builder_options_and_shm() {
  auto s = OK(xmmap::shm::create("xmmap-cxx", 4 * unit()));
  CHECK(s->size() == 4 * unit());
  auto m = OK(xmmap::builder(unit()).from_shm(*s).offset(unit()).protection(XM_PROT_READ_WRITE).populate().build());
  auto view = OK(xmmap::builder(unit()).from_shm(*s).offset(unit()).protection(XM_PROT_READ).build());
  const std::uint32_t v = 0xfeedu;
  std::uint32_t back = 0;
  CHECK(OK(m->write_obj(12, v)) && OK(view->read_obj(12, back)) && back == v); /* one object, two views */
  auto guarded = OK(xmmap::builder(unit()).guard_pages(1).dontdump().build());
  auto cow = OK(xmmap::builder(unit()).from_shm(*s).copy_on_write().build());
  CHECK(OK(cow->write_obj(12, std::uint32_t{1})) && OK(m->read_obj(12, back)) && back == v);
  auto clone = OK(s->clone());
  CHECK(clone->size() == s->size() && clone->descriptor() != s->descriptor());
  auto seals = s->seals(); /* no seals on Windows */
  CHECK(seals || seals.error() == xmmap::errc::not_implemented);
  auto flagged = xmmap::shm::create("xmmap-cxx-lazy", unit(), XM_SHM_LAZY_COMMIT);
  CHECK(flagged && flagged->size() == unit());
  CHECK(xmmap::shm::create("xmmap-cxx-bad", unit(), 0x80u).error() == xmmap::errc::invalid_argument);

  /* destruction closes the descriptor: adopting it again fails (nothing opens one in between) */
  xm_descriptor d = clone->descriptor();
  clone.value() = xmmap::shm();
  auto adopted = xmmap::shm::from_descriptor(d);
  CHECK(!adopted && adopted.error() == xmmap::errc::system_call);
}

static void arena_owner() {
  auto made = OK(xmmap::arena::create(8 * unit()));
  xmmap::arena a = std::move(*made);
  const std::size_t g = a.granularity();
  CHECK(g > 0 && a.size() == 8 * unit() && a.data() != nullptr);
  auto s = OK(xmmap::shm::create("xmmap-cxx-arena", 2 * g));
  CHECK(OK(a.add_anon(0, g, XM_PROT_READ_WRITE)) && OK(a.add_shm(2 * g, 2 * g, *s, 0, XM_PROT_READ_WRITE)));
  xmmap::region_ref r = a.region();
  unsigned char out[16] = {1, 2, 3}, in[16] = {};
  CHECK(*OK(r.write_safe(2 * g + 5, xmmap::bytes_of(out))) == sizeof out);
  CHECK(*OK(r.read_safe(2 * g + 5, xmmap::bytes_of(in))) == sizeof in && in[2] == 3);
  CHECK(OK(r.protect(0, g, XM_PROT_READ)) && OK(r.protect(0, g, XM_PROT_READ_WRITE)));
  CHECK(OK(a.remove(2 * g, 2 * g)));
  /* removed: faults (valgrind reports a copy from reserved space as an invalid read: not there) */
  if (!under_valgrind()) CHECK(r.read_safe(2 * g, xmmap::bytes_of(in)).error() == xmmap::errc::fault);
  CHECK(a.add_anon(1, g, XM_PROT_READ_WRITE).error() == xmmap::errc::not_page_aligned);

  void *base = a.data();
  xmmap::arena moved = std::move(a);
  CHECK(!a && moved.data() == base); // NOLINT(bugprone-use-after-move)
  CHECK(!range_is_free(base, 8 * unit()));
  moved.reset(); /* releases the reservation */
  CHECK(range_is_free(base, 8 * unit()));

  auto in_range = xmmap::arena::create_in(unit(), 0, 1, 0); /* a range smaller than the arena */
  CHECK(in_range.error() == xmmap::errc::invalid_argument);
}

static void external_region_owner() {
  std::vector<unsigned char> memory(4096, 0);
  auto e = OK(xmmap::external_region::create(memory.data(), memory.size()));
  xmmap::region_ref r = e->region();
  CHECK(r.data() == memory.data() && r.size() == memory.size());
  const unsigned char text[] = "external";
  CHECK(*OK(r.write_safe(100, xmmap::bytes_of(text))) == sizeof text);
  CHECK(std::memcmp(memory.data() + 100, text, sizeof text) == 0);
  CHECK(r.add_fd_mapping(0, 4096, xm_descriptor(), 0, XM_PROT_READ).error() == xmmap::errc::add_fd_mapping_unsupported);
}

static void code_owner() {
  auto made = OK(xmmap::code::create(100));
  xmmap::code c = std::move(made).value();
  CHECK(c.size() >= 100 && c.size() % xmmap::page_size() == 0);
  CHECK(c.strategy() != nullptr && c.writable().size() == c.size());
  CHECK(OK(c.begin_write(0, 16)));
  /* x86-64: mov eax, 42; ret */
  const unsigned char ret42[] = {0xb8, 0x2a, 0x00, 0x00, 0x00, 0xc3};
  std::memcpy(c.write_ptr(), ret42, sizeof ret42);
  CHECK(OK(c.end_write(0, 16)));
#if defined(__x86_64__) || defined(_M_X64)
  int (*fn)(void) = nullptr;
  void *exec = c.exec_ptr();
  std::memcpy(&fn, &exec, sizeof fn); /* an object pointer to a function pointer, without a cast */
  CHECK(fn() == 42);
#endif
  CHECK(OK(xmmap::icache_sync(c.exec_ptr(), 16)));
  void *w = c.write_ptr();
  std::size_t size = c.size();
  xmmap::code moved = std::move(c);
  CHECK(!c && moved.write_ptr() == w); // NOLINT(bugprone-use-after-move)
  moved.reset();
  CHECK(range_is_free(w, size));
}

/* A hook's callable that counts its calls, remembers where it lives, and how many of its kind
   are alive (moved-from copies included). What the handler writes is atomic (lock-free: allowed in
   a signal handler), and each faulting store is followed by a signal fence, so that the compiler
   reads it again after the fault. */
struct unprotect_on_fault {
  static inline int alive = 0;
  static inline std::atomic<int> calls{0};
  static inline std::atomic<const void *> seen_at{nullptr};
  xmmap::mapping *m;
  explicit unprotect_on_fault(xmmap::mapping *target) : m(target) { ++alive; }
  unprotect_on_fault(const unprotect_on_fault &o) : m(o.m) { ++alive; }
  unprotect_on_fault(unprotect_on_fault &&o) noexcept : m(o.m) { ++alive; }
  unprotect_on_fault &operator=(const unprotect_on_fault &) = delete;
  ~unprotect_on_fault() { --alive; }
  xm_fault_action operator()(const xm_fault &f) {
    ++calls;
    seen_at = this;
    if (f.addr < m->data() || f.addr >= static_cast<std::byte *>(m->data()) + m->size()) return XM_FAULT_PASS;
    return m->protect(0, m->size(), XM_PROT_READ_WRITE) ? XM_FAULT_RETRY : XM_FAULT_PASS;
  }
};

static void fault_hook_owner() {
  auto made = OK(xmmap::builder(unit()).build());
  xmmap::mapping m = std::move(*made);
  volatile unsigned char *p = static_cast<unsigned char *>(m.data());
  {
    auto h = OK(xmmap::fault_hook::add(m.data(), m.size(), unprotect_on_fault(&m)));
    CHECK(unprotect_on_fault::alive == 1); /* the temporary is gone; the hook's own copy lives */
    CHECK(OK(m.protect(0, m.size(), XM_PROT_NONE)));
    p[10] = 1; /* faults; the callable lifts the protection and the store runs again */
    std::atomic_signal_fence(std::memory_order_seq_cst);
    CHECK(unprotect_on_fault::calls == 1 && p[10] == 1);
    const void *where = unprotect_on_fault::seen_at.load();

    xmmap::fault_hook moved = std::move(h.value());
    CHECK(!h.value() && moved); // NOLINT(bugprone-use-after-move)
    CHECK(OK(m.protect(0, m.size(), XM_PROT_NONE)));
    p[11] = 2;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    CHECK(unprotect_on_fault::calls == 2 && unprotect_on_fault::seen_at == where); /* it did not move */
    CHECK(OK(xmmap::fault_handler_check()));

    std::atomic<int> lambda_calls{0};
    auto counting = OK(xmmap::fault_hook::add(m.data(), m.size(), [&lambda_calls](const xm_fault &) {
      ++lambda_calls;
      return XM_FAULT_PASS; /* the older hook fixes it */
    }));
    CHECK(OK(m.protect(0, m.size(), XM_PROT_READ)));
    p[12] = 3;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    CHECK(lambda_calls == 1 && unprotect_on_fault::calls == 3 && p[12] == 3);
  }
  CHECK(unprotect_on_fault::alive == 0); /* removed, then destroyed */
  /* with the hooks gone a safe copy of an inaccessible page reports the fault itself */
  CHECK(OK(m.protect(0, m.size(), XM_PROT_NONE)));
  unsigned char in[4];
  CHECK(m.region().read_safe(0, xmmap::bytes_of(in)).error() == xmmap::errc::fault);
  CHECK(unprotect_on_fault::calls == 3);
  CHECK(xmmap::fault_hook::add(m.data(), 0, unprotect_on_fault(&m)).error() == xmmap::errc::invalid_argument);
  CHECK(unprotect_on_fault::alive == 0); /* a failed add destroys its copy */
}

static void dirty_owner() {
  auto m = OK(xmmap::builder(4 * unit()).build());
  auto made = OK(xmmap::dirty::create(m->region(), 0, m->size()));
  xmmap::dirty d = std::move(*made);
  const std::size_t page = d.page_size();
  CHECK(page > 0 && d.strategy() != nullptr);
  std::vector<std::uint64_t> bitmap((m->size() / page + 63) / 64);
  CHECK(OK(d.collect(bitmap)));
  std::fill(bitmap.begin(), bitmap.end(), 0u);
  m->view()[page + 3] = std::byte{9}; /* a plain store: the tracker sees it however it is made */
  auto count = OK(d.collect(bitmap));
  CHECK(*count >= 1 && (bitmap[0] & 2u) != 0); /* page 1 was written */
  CHECK(xmmap::dirty::create(m->region(), 0, page).error() == xmmap::errc::exists);
  xmmap::dirty moved = std::move(d);
  CHECK(!d && moved); // NOLINT(bugprone-use-after-move)
  moved.reset();
  CHECK(OK(xmmap::dirty::create(m->region(), 0, page))); /* the range is free again */
}

/* Whether the process's mapping count is the program's own: valgrind and ASan's allocator map
   memory of their own as the program runs. */
static bool mapping_count_is_ours() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
  return false;
#endif
#endif
  return !under_valgrind();
}

/* Linux: destroyed owners leave the mapping count where it was. */
static void map_count_returns() {
  auto before = xmmap::map_count();
  if (!before) {
    CHECK(before.error() == xmmap::errc::not_implemented); /* Windows, QEMU user mode */
    return;
  }
  if (!mapping_count_is_ours()) return;
  {
    auto s = OK(xmmap::shm::create("xmmap-cxx-count", 4 * unit()));
    auto a = OK(xmmap::builder(unit()).from_shm(*s).build());
    auto b = OK(xmmap::builder(unit()).from_shm(*s).offset(unit()).guard_pages(1).build());
    auto mid = OK(xmmap::map_count());
    CHECK(mid->used >= before->used + 2);
  }
  auto after = OK(xmmap::map_count());
  CHECK(after->used == before->used);
}

int main() {
#if defined(__cpp_lib_span) && __cpp_lib_span >= 202002L
  static_assert(std::is_same_v<xmmap::bytes, std::span<std::byte>>, "C++20: the views are std::span");
  const char *views = "std::span";
#else
  const char *views = "pointer + size";
#endif
  errors_are_error_codes();
  mapping_owner();
  builder_options_and_shm();
  arena_owner();
  external_region_owner();
  code_owner();
  fault_hook_owner();
  dirty_owner();
  map_count_returns();
  std::printf("test_cxx: xmmap %s, %s back end, C++%ld, views %s: %d checks, %d failed\n", xmmap::version(),
              xm_backend_name(), __cplusplus / 100 % 100, views, checks, failures);
  return failures ? 1 : 0;
}
