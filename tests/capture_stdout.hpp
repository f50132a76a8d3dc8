// Test helper: what a function prints on std::cout (restored also when it throws).
#pragma once
#include <functional>
#include <iostream>
#include <sstream>
#include <string>

inline std::string capture_stdout(const std::function<void()>& f) {
  std::ostringstream out;
  auto* old = std::cout.rdbuf(out.rdbuf());
  try {
    f();
  } catch (...) {
    std::cout.rdbuf(old);
    throw;
  }
  std::cout.rdbuf(old);
  return out.str();
}
