// The Callback base class lives with the trainer that calls it: trainers/callback.hpp.
#pragma once
#include "../trainers/callback.hpp"
