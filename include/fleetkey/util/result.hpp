#pragma once
// Result<T>: a value or an error message, for low-level functions that should not throw
// (parsers, decoders). A small stand-in for C++23's std::expected.

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace fleetkey {

struct Failure
{
  std::string message;
};

inline Failure fail(std::string message)
{
  return Failure{std::move(message)};
}

template<typename T>
class [[nodiscard]] Result
{
public:
  Result(T value)
      : m_v(std::in_place_index<0>, std::move(value))
  {
  }
  Result(Failure failure)
      : m_v(std::in_place_index<1>, std::move(failure))
  {
  }

  bool ok() const noexcept { return m_v.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() &
  {
    assert(ok());
    return std::get<0>(m_v);
  }
  const T& value() const&
  {
    assert(ok());
    return std::get<0>(m_v);
  }
  T&& value() &&
  {
    assert(ok());
    return std::get<0>(std::move(m_v));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const std::string& error() const
  {
    assert(!ok());
    return std::get<1>(m_v).message;
  }

private:
  std::variant<T, Failure> m_v;
};

} // namespace fleetkey
