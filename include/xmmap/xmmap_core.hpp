/** @file xmmap_core.hpp
    The C++17 face's foundation (included by xmmap.hpp): statuses as std::error_code, result<T>,
    byte views and the move-only handle every owner is built on. */
#ifndef XMMAP_XMMAP_CORE_HPP
#define XMMAP_XMMAP_CORE_HPP

/* MSVC keeps __cplusplus at 199711L unless /Zc:__cplusplus; _MSVC_LANG is its real standard. */
#if defined(_MSVC_LANG)
#if _MSVC_LANG < 201703L
#error "xmmap.hpp needs C++17 or later (xmmap.h alone is clean as C++11)"
#endif
#elif __cplusplus < 201703L
#error "xmmap.hpp needs C++17 or later (xmmap.h alone is clean as C++11)"
#endif

#include <cstddef>
#include <cstdint>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#if __has_include(<version>)
#include <version>
#endif
#if defined(__cpp_lib_span) && __cpp_lib_span >= 202002L
#include <span>
#endif

#include "xmmap/xmmap.h"

namespace xmmap {

/* ---- statuses as std::error_code --------------------------------------------------------------- */
/** The XM_E_* statuses as an enumeration, so that `ec == xmmap::errc::fault` reads well. The values
    are the C ones (ABI). */
enum class errc : int {
  add_fd_mapping_unsupported = XM_E_ADD_FD_MAPPING_UNSUPPORTED,
  invalid_address = XM_E_INVALID_ADDRESS,
  invalid_alignment = XM_E_INVALID_ALIGNMENT,
  invalid_argument = XM_E_INVALID_ARGUMENT,
  invalid_offset = XM_E_INVALID_OFFSET,
  invalid_range = XM_E_INVALID_RANGE,
  not_implemented = XM_E_NOT_IMPLEMENTED,
  not_page_aligned = XM_E_NOT_PAGE_ALIGNED,
  read_to_memory = XM_E_READ_TO_MEMORY,
  remove_mapping_unsupported = XM_E_REMOVE_MAPPING_UNSUPPORTED,
  system_call = XM_E_SYSTEM_CALL,
  write_from_memory = XM_E_WRITE_FROM_MEMORY,
  out_of_bounds = XM_E_OUT_OF_BOUNDS,
  overflow = XM_E_OVERFLOW,
  no_memory = XM_E_NO_MEMORY,
  fault = XM_E_FAULT,
  exists = XM_E_EXISTS,
  access = XM_E_ACCESS,
  no_address = XM_E_NO_ADDRESS,
  map_limit = XM_E_MAP_LIMIT,
};

namespace detail {
/* The "xmmap" category: messages are xm_strerror's; the statuses that have a portable meaning
   compare equal to the std::errc condition (ec == std::errc::not_enough_memory). */
class category_impl final : public std::error_category {
public:
  const char *name() const noexcept override { return "xmmap"; }
  std::string message(int status) const override { return xm_strerror(status); }
  std::error_condition default_error_condition(int status) const noexcept override {
    switch (status) {
    case XM_E_INVALID_ARGUMENT: return std::make_error_condition(std::errc::invalid_argument);
    case XM_E_NO_MEMORY: return std::make_error_condition(std::errc::not_enough_memory);
    case XM_E_NOT_IMPLEMENTED: return std::make_error_condition(std::errc::not_supported);
    case XM_E_ACCESS: return std::make_error_condition(std::errc::permission_denied);
    case XM_E_EXISTS: return std::make_error_condition(std::errc::file_exists);
    case XM_E_FAULT: return std::make_error_condition(std::errc::bad_address);
    default: return std::error_condition(status, *this);
    }
  }
};
} // namespace detail

/** The error category of xmmap's statuses: name() "xmmap", message() xm_strerror's text. One
    object per program (a function-local static of an inline function). */
inline const std::error_category &category() noexcept {
  static const detail::category_impl instance;
  return instance;
}
/** An XM_E_* status (or XM_OK, which gives the empty error_code) as a std::error_code. */
inline std::error_code make_error_code(int status) noexcept {
  return status == XM_OK ? std::error_code() : std::error_code(status, category());
}
/** Found by argument-dependent lookup: std::error_code ec = xmmap::errc::fault. */
inline std::error_code make_error_code(errc e) noexcept { return std::error_code(static_cast<int>(e), category()); }
/** This thread's last failure with its details (xm_errmsg): error().message() is the fixed text. */
inline const char *last_error_message() noexcept { return xm_errmsg(); }

/* ---- result<T> --------------------------------------------------------------------------------- */
namespace detail {
/* A failed status, to build a failed result<T> without ambiguity when T is itself an integer. */
struct failure {
  int status;
};
} // namespace detail

/** What every fallible call returns: a value or a status, no exceptions. It holds the plain int
    status, so success costs what the C call's return does; error() makes the std::error_code only
    when asked. A failed result's value() is T's empty value (an empty owner, 0): reading it is
    safe, never undefined. */
template <class T> class [[nodiscard]] result {
public:
  result(T value) noexcept(std::is_nothrow_move_constructible_v<T>) : value_(std::move(value)), status_(XM_OK) {}
  result(detail::failure f) noexcept(std::is_nothrow_default_constructible_v<T>) : value_(), status_(f.status) {}

  explicit operator bool() const noexcept { return status_ == XM_OK; }
  bool has_value() const noexcept { return status_ == XM_OK; }
  /** XM_OK or the XM_E_* status, as the C call returned it. */
  int status() const noexcept { return status_; }
  std::error_code error() const noexcept { return make_error_code(status_); }

  T &value() &noexcept { return value_; }
  const T &value() const &noexcept { return value_; }
  T &&value() &&noexcept { return std::move(value_); }
  T &operator*() &noexcept { return value_; }
  const T &operator*() const &noexcept { return value_; }
  T &&operator*() &&noexcept { return std::move(value_); }
  T *operator->() noexcept { return &value_; }
  const T *operator->() const noexcept { return &value_; }

private:
  T value_;
  int status_;
};

/** A status alone: the result of a call that makes nothing (protect, flush, read_obj...). */
template <> class [[nodiscard]] result<void> {
public:
  /** From a C call's status: result<void>(xm_mapping_msync(m)). */
  explicit result(int status) noexcept : status_(status) {}
  explicit operator bool() const noexcept { return status_ == XM_OK; }
  bool has_value() const noexcept { return status_ == XM_OK; }
  int status() const noexcept { return status_; }
  std::error_code error() const noexcept { return make_error_code(status_); }

private:
  int status_;
};

namespace detail {
/* A C call with an out-parameter -> result: the owner adopts what the call made. The out-parameter
   is taken by reference so that it is read after the call, whatever order the arguments of
   adopt(xm_..._new(..., &made), made) are evaluated in. */
template <class Owner, class Raw> result<Owner> adopt(int status, Raw *const &made) noexcept {
  if (status != XM_OK) return failure{status};
  return Owner(made);
}
template <class T> result<T> value_or_failure(int status, const T &value) noexcept {
  if (status != XM_OK) return failure{status};
  return value;
}
} // namespace detail

/* ---- byte views -------------------------------------------------------------------------------- */
#if defined(__cpp_lib_span) && __cpp_lib_span >= 202002L
/** C++20: the views are std::span. */
template <class T> using span = std::span<T>;
#else
/** Before C++20: a pointer and a count with std::span's names for what xmmap uses. */
template <class T> class span {
public:
  constexpr span() noexcept = default;
  constexpr span(T *data, std::size_t size) noexcept : data_(data), size_(size) {}
  template <std::size_t N> constexpr span(T (&array)[N]) noexcept : data_(array), size_(N) {}
  /* span<std::byte> -> span<const std::byte>, and contiguous containers (std::vector, std::array,
     std::string), as std::span converts them */
  template <class C, class E = std::remove_pointer_t<decltype(std::declval<C &>().data())>,
            class = std::enable_if_t<std::is_convertible_v<E (*)[], T (*)[]>>>
  constexpr span(C &container) noexcept : data_(container.data()), size_(container.size()) {}
  template <class U, class = std::enable_if_t<std::is_convertible_v<U (*)[], T (*)[]>>>
  constexpr span(const span<U> &other) noexcept : data_(other.data()), size_(other.size()) {}

  constexpr T *data() const noexcept { return data_; }
  constexpr std::size_t size() const noexcept { return size_; }
  constexpr std::size_t size_bytes() const noexcept { return size_ * sizeof(T); }
  constexpr bool empty() const noexcept { return size_ == 0; }
  constexpr T *begin() const noexcept { return data_; }
  constexpr T *end() const noexcept { return data_ + size_; }
  constexpr T &operator[](std::size_t i) const noexcept { return data_[i]; }
  /** [offset, offset + count) of this view; both must lie inside it (as with std::span). */
  constexpr span subspan(std::size_t offset, std::size_t count) const noexcept { return span(data_ + offset, count); }

private:
  T *data_ = nullptr;
  std::size_t size_ = 0;
};
#endif
/** Writable bytes (mapped memory, a caller's buffer). */
using bytes = span<std::byte>;
/** Read-only bytes. */
using const_bytes = span<const std::byte>;

/** A view of n bytes at p. */
inline bytes bytes_of(void *p, std::size_t n) noexcept { return bytes(static_cast<std::byte *>(p), n); }
inline const_bytes bytes_of(const void *p, std::size_t n) noexcept {
  return const_bytes(static_cast<const std::byte *>(p), n);
}
/** The bytes of an object or array of trivially copyable type (const in, const out). */
template <class T> auto bytes_of(T &object) noexcept {
  static_assert(std::is_trivially_copyable_v<T>, "bytes_of: the object must be trivially copyable");
  return bytes_of(static_cast<std::conditional_t<std::is_const_v<T>, const void *, void *>>(&object), sizeof object);
}

/* ---- the move-only handle ------------------------------------------------------------------------ */
namespace detail {
/* Unique ownership of a C object freed by Free (every xm_*_free takes NULL as a no-op). */
template <class T, void (*Free)(T *)> class handle {
public:
  constexpr handle() noexcept = default;
  /** Adopts p: it is freed with this handle. */
  explicit handle(T *p) noexcept : p_(p) {}
  handle(handle &&other) noexcept : p_(other.release()) {}
  handle &operator=(handle &&other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  handle(const handle &) = delete;
  handle &operator=(const handle &) = delete;
  ~handle() { Free(p_); }

  /** The C object, still owned here (NULL when empty). */
  T *get() const noexcept { return p_; }
  /** Gives up ownership: the caller frees it with the C call. */
  T *release() noexcept { return std::exchange(p_, nullptr); }
  /** Frees what is held and adopts p. */
  void reset(T *p = nullptr) noexcept { Free(std::exchange(p_, p)); }
  explicit operator bool() const noexcept { return p_ != nullptr; }

private:
  T *p_ = nullptr;
};
} // namespace detail

} // namespace xmmap

namespace std {
/** xmmap::errc converts to std::error_code implicitly. */
template <> struct is_error_code_enum<xmmap::errc> : true_type {};
} // namespace std

#endif /* XMMAP_XMMAP_CORE_HPP */
