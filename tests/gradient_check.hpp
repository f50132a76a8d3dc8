// The gradient checker of the test suite is the library's own: keras/testing/layer_check.hpp
// (check_gradient and its error formula, documented there; check_layer for whole layers).
#pragma once
#include <keras/testing/layer_check.hpp>
