// CPU time per image of MobileNetV2-192 inference on one thread (this thread's CPU clock, not the
// wall clock): on a machine shared with other builds a time-sliced run inflates wall times by 2-4x,
// while the CPU time a prediction costs moves by a few percent. For before/after comparisons of two
// builds, run alternately: bench/ab_cputime.py OLD NEW.
//
//   bench_cputime [reps=20] [batches=1,8,32]
//
// Prints one JSON line per batch: {"batch": b, "ms_per_image": [...]} (one value per repetition).
#include <keras/applications/mobilenet_v2.hpp>
#include <keras/keras.hpp>

#include "bench_util.hpp"

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <sstream>
#include <string>
#include <vector>

using keras::Index;
using keras::Tensor;

namespace {
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}
}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 20;
  std::vector<Index> batches;
  {
    std::stringstream ss(argc > 2 ? argv[2] : "1,8,32");
    std::string tok;
    while (std::getline(ss, tok, ',')) batches.push_back(std::atol(tok.c_str()));
  }
  keras::set_num_threads(1);
  keras::Random rng(42);
  keras::set_random_seed(42);
  auto base =
      keras::applications::MobileNetV2<float>({.input_shape = {192, 192, 3}, .include_top = false, .pooling = "avg"});
  randomise_bn(*base, rng);
  base->set_trainable(false);
  for (Index b : batches) {
    Tensor<float> x({b, 192, 192, 3});
    for (Index i = 0; i < x.size(); ++i) x[i] = static_cast<float>(rng.uniform(-1, 1));
    for (int w = 0; w < 2; ++w) (*base)(x);
    std::printf("{\"batch\": %ld, \"ms_per_image\": [", long(b));
    for (int r = 0; r < reps; ++r) {
      const double t0 = thread_cpu_seconds();
      (*base)(x);
      std::printf("%s%.4f", r ? ", " : "", (thread_cpu_seconds() - t0) * 1e3 / double(b));
    }
    std::printf("]}\n");
    std::fflush(stdout);
  }
}
