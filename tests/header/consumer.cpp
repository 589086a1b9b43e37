/* A consumer of the C++ header, compiled by tests/header/check.cmake as C++17 and C++20 with g++
   and clang++ under the same strict warnings as consumer.c plus -fno-exceptions -fno-rtti: every
   template and inline function of xmmap.hpp and xmmap_core.hpp is used here, so that anything
   they expand to in a user's file is compiled. */
#include <array>
#include <vector>

#include "xmmap/xmmap.hpp"

int xmmap_hpp_consumer(xmmap::mapping &m, xmmap::arena &a, xmmap::shm &s, xmmap::code &c, xmmap::dirty &d);

namespace {
struct count_faults {
  int *count;
  xm_fault_action operator()(const xm_fault &) const {
    ++*count;
    return XM_FAULT_PASS;
  }
};
xm_fault_action plain_hook(const xm_fault *, void *) { return XM_FAULT_PASS; }
} // namespace

int xmmap_hpp_consumer(xmmap::mapping &m, xmmap::arena &a, xmmap::shm &s, xmmap::code &c, xmmap::dirty &d) {
  int bad = 0;
  unsigned char buf[16] = {0};
  std::array<std::uint64_t, 2> words{};
  std::vector<std::uint64_t> bitmap(4);
  std::uint64_t v = 0;
  std::uint32_t w = 0;

  /* errors and results */
  std::error_code ec = xmmap::errc::fault;
  bad += ec == xmmap::make_error_code(XM_E_FAULT) ? 0 : 1;
  bad += ec.category() == xmmap::category() && ec != std::errc::bad_address ? 1 : 0;
  bad += xmmap::last_error_message() != nullptr ? 0 : 1;
  const xmmap::result<void> done(XM_OK);
  bad += done && done.has_value() && done.status() == XM_OK && !done.error() ? 0 : 1;
  auto count = xmmap::map_count();
  bad += count.has_value() && count->used > count.value().limit ? 1 : 0;

  /* views */
  xmmap::bytes view = xmmap::bytes_of(buf);
  xmmap::const_bytes cview = view;
  const std::uint64_t cv = 1;
  xmmap::const_bytes object = xmmap::bytes_of(cv);
  bad += cview.size() == view.size() && object.size() == sizeof cv && !view.empty() ? 0 : 1;
  bad += view.subspan(1, 2).size() == 2 && view[0] == std::byte{0} && view.begin() != view.end() ? 0 : 1;
  bad += xmmap::bytes_of(static_cast<void *>(buf), 4).size_bytes() == 4 ? 0 : 1;
  bad += xmmap::bytes_of(static_cast<const void *>(buf), 4).data() != nullptr ? 0 : 1;

  /* the mapping */
  bad += m.read_obj(0, v) && m.write_obj(8, v) ? 0 : 1;
  bad += m.read_obj_volatile(0, w) && m.write_obj_volatile(4, w) ? 0 : 1;
  bad += m.read_slice(0, view) && m.write_slice(0, cview) ? 0 : 1;
  bad += m.read_slice_safe(0, view) && m.write_slice_safe(0, cview) ? 0 : 1;
  bad += m.get_slice(0, 4) && m.protect(0, 16, XM_PROT_READ) && m.msync() ? 0 : 1;
  bad += m.sync_range(0, 16, XM_SYNC_SYNC) && m.flush(0, 16) && m.flush_all() ? 0 : 1;
  bad += m.advise(0, 16, XM_ADVICE_NORMAL) && m.lock_on_fault(0, 16) && m.unlock(0, 16) ? 0 : 1;
  bad += m.data() == m.view().data() && m.size() == m.view().size() ? 0 : 1;
  bad += m.use_hugepages() && m.use_dontfork() && m.remove_range(0, 16) ? 0 : 1;
  bad += m.async_prefetch(0, 16) && m.drop_page_cache(0, 16) ? 0 : 1;

  /* regions */
  xmmap::region_ref r = m.region();
  bad += r && r.get() && r.data() && r.size() && r.view().size() ? 0 : 1;
  bad += r.read_safe(0, view) && r.write_safe(0, cview) && r.protect(0, 16, XM_PROT_READ) ? 0 : 1;
  bad += r.commit(0, 16, XM_PROT_READ) && r.decommit(0, 16) && r.msync(0, 16) ? 0 : 1;
  bad += r.advise(0, 16, XM_ADVICE_NORMAL) && r.add_fd_mapping(0, 16, s.descriptor(), 0, XM_PROT_READ) ? 0 : 1;
  bad += r.remove_mapping(0, 16) ? 0 : 1;
  auto external = xmmap::external_region::create(buf, sizeof buf);
  bad += external && external->region().data() == buf ? 0 : 1;

  /* the builder and shared memory */
  xmmap::builder b(4096);
  b.from_file(s.descriptor()).from_shm(s).from_descriptor(s.descriptor()).offset(0).protection(XM_PROT_READ);
  b.align(4096).populate().dontdump().copy_on_write().to_end_of_file().guard_pages(1);
  b.fixed_noreplace(nullptr).address_range(0, 1).huge_pages(0);
  const xmmap::builder &cb = b;
  bad += b.get()._private.size == cb.get()._private.size && cb.build() ? 0 : 1;
  auto made = xmmap::shm::create("consumer", 4096, XM_SHM_EXEC, 0);
  auto adopted = xmmap::shm::from_descriptor(s.descriptor(), 0);
  bad += made && adopted && s.clone() && s.clone_readonly() && s.size() == 4096 ? 0 : 1;
  bad += s.seals() && s.add_seals(XM_SEAL_SEAL) ? 0 : 1;

  /* the arena */
  auto arena = xmmap::arena::create(1 << 20);
  auto placed = xmmap::arena::create_in(1 << 20, 0, ~std::uintptr_t{0}, 0);
  bad += arena && placed && a.granularity() && a.region() && a.data() && a.size() ? 0 : 1;
  bad += a.add_anon(0, 4096, XM_PROT_READ_WRITE) && a.add_fd(0, 4096, s.descriptor(), 0, XM_PROT_READ) ? 0 : 1;
  bad += a.add_shm(0, 4096, s, 0, XM_PROT_READ) && a.remove(0, 4096) ? 0 : 1;

  /* code buffers */
  auto code = xmmap::code::create(4096, XM_CODE_DUAL_VIEW, nullptr);
  bad += code && c.write_ptr() && c.exec_ptr() && c.size() && c.writable().size() && c.strategy() ? 0 : 1;
  bad += c.begin_write(0, 16) && c.end_write(0, 16) && xmmap::icache_sync(c.exec_ptr(), 16) ? 0 : 1;

  /* fault hooks: a lambda, a function object, the C form */
  int faults = 0;
  auto lambda = xmmap::fault_hook::add(buf, sizeof buf, [&faults](const xm_fault &f) {
    faults += f.addr != nullptr;
    return XM_FAULT_PASS;
  });
  auto functor = xmmap::fault_hook::add(buf, sizeof buf, count_faults{&faults});
  auto plain = xmmap::fault_hook::add(buf, sizeof buf, plain_hook, nullptr);
  xmmap::fault_hook moved(std::move(lambda.value()));
  moved = std::move(functor.value());
  bad += moved && moved.get() && plain ? 0 : 1;
  xm_fault_hook_remove(plain->release());
  moved.reset();
  bad += xmmap::fault_handler_check() && xmmap::fault_handler_reinstall() ? 0 : 1;

  /* write tracking */
  auto tracker = xmmap::dirty::create(r, 0, 4096, 0);
  bad += tracker && d.collect(bitmap) && d.collect(words) && d.page_size() && d.strategy() ? 0 : 1;

  /* the handle every owner shares */
  xmmap::mapping other(m.release());
  m = std::move(other);
  m.reset(m.release());
  bad += m && m.get() ? 0 : 1;
  bad += xmmap::page_size() && xmmap::allocation_granularity() && xmmap::version() ? 0 : 1;
  bad += xmmap::cacheline_size() && xmmap::arena_strategy() && xmmap::icache_method() ? 0 : 1;
  bad += xmmap::last_os_error();
  return bad + faults;
}
