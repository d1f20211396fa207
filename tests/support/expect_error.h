// The exception a call must throw, for tests that check its message or its parts (what failed,
// where, hint): one definition instead of a try/catch helper in every test file.
#pragma once

#include <catch2/catch.hpp>

#include <exception>
#include <stdexcept>
#include <string>
#include <utility>

namespace studio::test {

// The E that f() throws; the test fails when f() returns, or throws something else.
template <typename E, typename F>
E caught(F&& f) {
  try {
    std::forward<F>(f)();
  } catch (const E& e) {
    return e;
  } catch (const std::exception& e) {
    FAIL("expected another exception type, got: " << e.what());
  }
  FAIL("no exception was thrown");
  throw std::logic_error("unreachable");
}

// The message (what()) of the E that f() throws.
template <typename E, typename F>
std::string error_of(F&& f) {
  return caught<E>(std::forward<F>(f)).what();
}

}  // namespace studio::test
