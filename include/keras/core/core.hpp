#pragma once
#include "error.hpp"
#include "random.hpp"
#include "shape.hpp"
#include "tensor.hpp"
#include "threading.hpp"
