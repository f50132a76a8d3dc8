// Data-parallel training throughput over MPI (keras/distribute/mpi.hpp): the same fit() step on R
// processes of one thread each, against one process of one thread (run both, compare).
//
//   mpirun -np R bench_distributed [top|full] [batch_per_replica=32] [steps=12] [weights=DIR|random]
//
//   top   MobileNetV2's top blocks (bench/top_blocks.hpp: block_13 ... Dense(5)), BatchNorm frozen,
//         Adam(1e-4), input 12x12x96 (block_12's output for 192x192 images): the flowers
//         fine-tuning step. 1.67 M trainable parameters (6.68 MB of gradients per step).
//   full  the whole MobileNetV2-192 + Dense(5, softmax), every layer trainable, BatchNorm in
//         training mode (per-replica batch statistics, as Horovod), Adam. 2.23 M trainable
//         parameters (8.92 MB per step).
// Every replica trains on batch_per_replica samples per step (weak scaling: the global batch is R
// times that; the step's work per replica is the same for every R). One warm-up epoch of 2 steps,
// then an epoch of `steps` steps through model.fit; the chief prints one JSON line:
//   {"bench": "distributed-<net>", "replicas", "batch_per_replica", "steps", "samples_per_s",
//    "step_s", "comm_share", "gradient_share", "gradient_mb_per_step", "load"}
// comm_share: the largest over the replicas of (time in DataParallel's collectives) / (fit time);
// gradient_share: the same for the gradient allreduce alone; cpu_util: the smallest over the
// replicas of (process CPU time) / (fit time), below 1 when the machine is busy with other work
// (MPI busy-waits, so waiting for a slower replica counts as CPU); samples_per_cpu_s: samples over
// the CPU time of all replicas, whatever share of the machine they got. bench/mpi_scaling.sh runs 1 and 2
// replicas alternately and prints the ratios (docs/distributed.md).
#include <keras/distribute/mpi.hpp>

#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "top_blocks.hpp"

using keras::Index;
using keras::Tensor;

int main(int argc, char** argv) try {
  keras::distribute::MPI mpi(argc, argv);
  const std::string net = argc > 1 ? argv[1] : "top";
  const Index b = argc > 2 ? std::atol(argv[2]) : 32;
  const Index steps = argc > 3 ? std::atol(argv[3]) : 12;
  std::string weights = argc > 4 ? argv[4] : "";
  if (net != "top" && net != "full")
    throw keras::ValueError("bench_distributed: the network is 'top' or 'full', got '" + net + "'");
  if (b < 1 || steps < 1) throw keras::ValueError("bench_distributed: batch_per_replica and steps must be >= 1");
  if (weights.empty()) {
    const char* home = std::getenv("HOME");
    weights = std::string(home ? home : ".") + "/.cache/kerascpp/mobilenet_v2_1.0_224_no_top";
  }
  if (weights != "random" && !std::filesystem::exists(weights + "/model.json")) weights = "random";
  keras::set_num_threads(1);
  keras::set_random_seed(42);
  keras::Random rng(42);
  const int R = mpi.size();

  std::shared_ptr<keras::Model<float>> model;
  keras::Shape in_shape;
  bench::TopBlocks t;
  if (net == "top") {
    t = bench::make_top_blocks(12);
    if (weights == "random")
      bench::randomise_bn(*t.backbone, rng);
    else
      keras::io::load_weights(*t.backbone, weights, /*allow_unused=*/true);
    for (auto& l : t.model->layers())
      if (l->class_name() == "BatchNormalization") l->set_trainable(false);
    model = t.model;
    model->compile(keras::optimizers::Adam<float>({.learning_rate = 1e-4}),
                   keras::losses::CategoricalCrossentropy<float>());
    in_shape = {12, 12, 96};
  } else {
    auto base =
        keras::applications::MobileNetV2<float>({.input_shape = {192, 192, 3}, .include_top = false, .pooling = "avg"});
    bench::randomise_bn(*base, rng);
    auto in = keras::Input<float>({192, 192, 3});
    auto out = keras::layers::Dense<float>(5, {.activation = "softmax", .name = "head"})((*base)(in));
    model = std::make_shared<keras::Model<float>>(in, out, "finetune");
    model->compile(keras::optimizers::Adam<float>(), keras::losses::CategoricalCrossentropy<float>());
    in_shape = {192, 192, 3};
  }
  // one process: the plain single-process fit (no distribution), the baseline of the ratios
  auto dp = keras::distribute::DataParallel<float>::make(mpi);
  if (R > 1) model->set_distribution(dp);
  // steps global batches of R * b samples (every replica holds them all and trains on its part)
  const Index n = (steps + 2) * R * b;
  keras::Shape xs = in_shape;
  xs.insert(xs.begin(), n);
  Tensor<float> x(xs), y({n, 5}, 0.f);
  for (Index i = 0; i < x.size(); ++i) x[i] = static_cast<float>(rng.normal(0.0, net == "top" ? 2.0 : 0.5));
  for (Index i = 0; i < n; ++i) y[i * 5 + i % 5] = 1.f;
  keras::FitOptions<float> fo{
      .epochs = 1, .batch_size = R * b, .shuffle = false, .verbose = 0, .steps_per_epoch = -1, .cache_frozen = false};
  // warm-up: 2 steps (buffers, first touch)
  Tensor<float> xw = x.slice_rows(0, 2 * R * b), yw = y.slice_rows(0, 2 * R * b);
  model->fit(xw, yw, fo);
  Tensor<float> xt = x.slice_rows(2 * R * b, steps * R * b), yt = y.slice_rows(2 * R * b, steps * R * b);
  dp->reset_stats();
  auto cpu_now = [] {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
  };
  const double cpu0 = cpu_now();
  const auto t0 = std::chrono::steady_clock::now();
  model->fit(xt, yt, fo);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu_util = (cpu_now() - cpu0) / secs;  // < 1: the process was not running all the time (a busy machine)
  const auto& s = dp->stats();
  std::vector<double> shares{(s.gradient_seconds + s.other_seconds) / secs, s.gradient_seconds / secs};
  // the largest share over the replicas (a sum of one-hot contributions)
  std::vector<double> all(static_cast<std::size_t>(3 * R), 0.0);
  all[static_cast<std::size_t>(3 * mpi.rank())] = shares[0];
  all[static_cast<std::size_t>(3 * mpi.rank() + 1)] = shares[1];
  all[static_cast<std::size_t>(3 * mpi.rank() + 2)] = cpu_util;
  if (R > 1) dp->all_sum(all);
  double comm = 0, grad = 0, util = 1e9, util_sum = 0;
  for (int r = 0; r < R; ++r) {
    comm = std::max(comm, all[static_cast<std::size_t>(3 * r)]);
    grad = std::max(grad, all[static_cast<std::size_t>(3 * r + 1)]);
    util = std::min(util, all[static_cast<std::size_t>(3 * r + 2)]);
    util_sum += all[static_cast<std::size_t>(3 * r + 2)];
  }
  if (mpi.is_chief()) {
    double load = -1;
    std::ifstream("/proc/loadavg") >> load;
    std::printf(
        "{\"bench\": \"distributed-%s\", \"replicas\": %d, \"batch_per_replica\": %ld, \"steps\": %ld, "
        "\"samples_per_s\": %.2f, "
        "\"step_s\": %.4f, \"comm_share\": %.4f, \"gradient_share\": %.4f, \"gradient_mb_per_step\": %.2f, "
        "\"weights\": \"%s\", "
        "\"cpu_util\": %.2f, \"samples_per_cpu_s\": %.2f, \"load\": %.2f}\n",
        net.c_str(), R, long(b), long(steps), double(steps * R * b) / secs, secs / double(steps), comm, grad,
        s.steps ? s.gradient_bytes / double(s.steps) / 1e6 : 0.0,
        net == "top" ? weights == "random" ? "random" : "keras" : "random", util,
        double(steps * R * b) / secs / util_sum, load);
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_distributed: error: %s\n", e.what());
  return 1;
}
