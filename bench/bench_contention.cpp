// One worker of the contention benchmark (bench/contention.py runs several at once).
//
//   bench_contention <what> [--batch B] [--threads T] [--seconds S] [--sync] [--size PX]
//
//   infer      the flowers example's model: Rescaling -> MobileNetV2 (no top, frozen) -> GAP ->
//              Dropout(0.2) -> Dense(1, sigmoid), model.predict(x) on a batch of B (default 1) images
//              of PX x PX (default 160)
//   train-cnn  a small CNN (64x64x3: Conv 32 -> MaxPool -> Conv 64 -> MaxPool -> Conv 64 -> GAP ->
//              Dense 10 softmax), one train_on_batch at batch B (default 32), Adam + CCE
//   train      MobileNetV2-PX fully trainable + Dense(5, softmax) head, one train_on_batch at batch B
//              (default 32): the full fine-tuning step
//
// After building the model and 3 warm-up calls, with --sync it prints "ready" and waits for a line on
// stdin (so that the processes of one scenario measure the same window: bench/contention.py sends
// the line when all are ready), then calls the work repeatedly for S seconds (default 4) and prints one JSON line:
// {"tool": "kerascpp <what>", "threads", "batch", "ips": [images/s of each call], "total_ips": images / wall time of
// the window}. Weights are random (seeded).
#include <keras/applications/mobilenet_v2.hpp>
#include <keras/keras.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

using keras::Index;
using keras::Tensor;

namespace {

Tensor<float> random_tensor(const keras::Shape& s, keras::Random& rng, double lo, double hi) {
  Tensor<float> t(s);
  for (Index i = 0; i < t.size(); ++i) t[i] = static_cast<float>(rng.uniform(lo, hi));
  return t;
}

void randomise_bn(keras::Model<float>& m, keras::Random& rng) {
  for (auto& l : m.layers()) {
    auto* bn = dynamic_cast<keras::layers::BatchNormalization<float>*>(l.get());
    if (!bn) continue;
    for (Index c = 0; c < bn->moving_mean().value.size(); ++c) {
      bn->moving_mean().value[c] = static_cast<float>(rng.uniform(-0.2, 0.2));
      bn->moving_variance().value[c] = static_cast<float>(rng.uniform(0.5, 2.0));
    }
  }
}

Tensor<float> one_hot(Index n, Index k) {
  Tensor<float> y({n, k}, 0.f);
  for (Index i = 0; i < n; ++i) y[i * k + i % k] = 1.f;
  return y;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(
        stderr,
        "usage: bench_contention infer|train-cnn|train [--batch B] [--threads T] [--seconds S] [--sync] [--size PX]\n");
    return 2;
  }
  const std::string what = argv[1];
  Index batch = what == "infer" ? 1 : 32;
  int threads = 0;
  double seconds = 4;
  bool sync = false;
  Index size = 160;
  for (int i = 2; i < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--sync") {
      sync = true;
      --i;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "bench_contention: %s needs a value\n", k.c_str());
      return 2;
    }
    const char* v = argv[i + 1];
    if (k == "--batch")
      batch = std::atol(v);
    else if (k == "--threads")
      threads = std::atoi(v);
    else if (k == "--seconds")
      seconds = std::atof(v);
    else if (k == "--size")
      size = std::atol(v);
    else {
      std::fprintf(stderr, "bench_contention: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (threads > 0) keras::set_num_threads(threads);
  auto wait_start = [&] {
    if (!sync) return;
    std::printf("ready\n");
    std::fflush(stdout);
    char line[64];
    if (!std::fgets(line, sizeof line, stdin)) std::exit(3);
  };

  keras::Random rng(7);
  keras::set_random_seed(7);
  std::shared_ptr<keras::Model<float>> model;
  Tensor<float> x, y;
  if (what == "infer") {
    auto base = keras::applications::MobileNetV2<float>({.input_shape = {size, size, 3}, .include_top = false});
    randomise_bn(*base, rng);
    base->set_trainable(false);
    auto seq = std::make_shared<keras::Sequential<float>>("flowers");
    seq->add(keras::layers::InputLayer<float>({.shape = {size, size, 3}, .name = "image"}));
    seq->add(keras::layers::Rescaling<float>(1.0 / 127.5, -1.0, {.name = "rescaling"}));
    seq->add(std::static_pointer_cast<keras::layers::Layer<float>>(base));
    seq->add(keras::layers::GlobalAveragePooling2D<float>({.name = "global_average_pooling2d"}));
    seq->add(keras::layers::Dropout<float>(0.2, {.seed = 7, .name = "dropout"}));
    seq->add(keras::layers::Dense<float>(1, {.activation = "sigmoid", .name = "predictions"}));
    model = seq;
    x = random_tensor({batch, size, size, 3}, rng, 0, 255);
  } else if (what == "train-cnn") {
    namespace L = keras::layers;
    auto seq = std::make_shared<keras::Sequential<float>>("cnn");
    seq->add(L::InputLayer<float>({.shape = {64, 64, 3}, .name = "image"}));
    seq->add(L::Conv2D<float>(32, 3, {.padding = "same", .activation = "relu", .name = "c1"}));
    seq->add(L::MaxPooling2D<float>(2, {.name = "p1"}));
    seq->add(L::Conv2D<float>(64, 3, {.padding = "same", .activation = "relu", .name = "c2"}));
    seq->add(L::MaxPooling2D<float>(2, {.name = "p2"}));
    seq->add(L::Conv2D<float>(64, 3, {.padding = "same", .activation = "relu", .name = "c3"}));
    seq->add(L::GlobalAveragePooling2D<float>({.name = "gap"}));
    seq->add(L::Dense<float>(10, {.activation = "softmax", .name = "out"}));
    seq->compile(keras::optimizers::Adam<float>(), keras::losses::CategoricalCrossentropy<float>());
    model = seq;
    x = random_tensor({batch, 64, 64, 3}, rng, -1, 1);
    y = one_hot(batch, 10);
  } else if (what == "train") {
    auto base = keras::applications::MobileNetV2<float>(
        {.input_shape = {size, size, 3}, .include_top = false, .pooling = "avg"});
    auto in = keras::Input<float>({size, size, 3});
    auto out = keras::layers::Dense<float>(5, {.activation = "softmax", .name = "head"})((*base)(in));
    model = std::make_shared<keras::Model<float>>(in, out, "finetune");
    model->compile(keras::optimizers::Adam<float>(), keras::losses::CategoricalCrossentropy<float>());
    x = random_tensor({batch, size, size, 3}, rng, -1, 1);
    y = one_hot(batch, 5);
  } else {
    std::fprintf(stderr, "bench_contention: unknown work '%s' (infer, train-cnn, train)\n", what.c_str());
    return 2;
  }
  const bool train = what != "infer";
  auto step = [&] {
    if (train)
      model->train_on_batch(x, y);
    else
      model->predict(x, batch);
  };
  for (int i = 0; i < 3; ++i) step();
  wait_start();
  std::vector<double> ips;
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  double elapsed = 0;
  while (elapsed < seconds || ips.size() < 2) {
    const auto a = Clock::now();
    step();
    const auto b = Clock::now();
    ips.push_back(double(batch) / std::chrono::duration<double>(b - a).count());
    elapsed = std::chrono::duration<double>(b - t0).count();
  }
  std::printf("{\"tool\": \"kerascpp %s\", \"threads\": %d, \"batch\": %ld, \"total_ips\": %.4f, \"ips\": [",
              what.c_str(), keras::get_num_threads(), long(batch), double(batch) * double(ips.size()) / elapsed);
  for (std::size_t i = 0; i < ips.size(); ++i) std::printf("%s%.3f", i ? ", " : "", ips[i]);
  std::printf("]}\n");
  return 0;
}
