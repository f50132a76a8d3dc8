// ProgbarLogger lives with the trainer that adds it: trainers/progbar.hpp.
#pragma once
#include "../trainers/progbar.hpp"
