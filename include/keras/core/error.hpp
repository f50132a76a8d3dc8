// keras::Error family: every failure the library reports is one of these.
#pragma once
#include <stdexcept>
#include <string>

namespace keras {

/// Base of every exception thrown by kerascpp.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

/// A value or argument is invalid (Keras raises ValueError for these).
class ValueError : public Error {
 public:
  using Error::Error;
};

/// Two shapes disagree. The message names the layer and both shapes.
class ShapeError : public ValueError {
 public:
  using ValueError::ValueError;
};

/// A file is missing, unreadable, truncated or malformed. The message names the file.
class IOError : public Error {
 public:
  using Error::Error;
};

/// Something was used before it was ready (predict before build, fit before compile).
class StateError : public Error {
 public:
  using Error::Error;
};

}  // namespace keras
