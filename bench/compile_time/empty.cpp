// tools/compile_time.sh (a): the cost of the umbrella header alone.
#include <keras/keras.hpp>

int main() {}
