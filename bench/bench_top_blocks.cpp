// Training step of MobileNetV2's top blocks, the part the flowers fine-tuning trains from the
// cut at block_13 (issue 19 part 4): block_13 ... block_16, Conv_1 + Conv_1_bn + out_relu,
// GlobalAveragePooling2D, Dense(5, softmax); every BatchNormalization frozen (inference mode,
// trainable = false: Keras's fine-tuning recipe), Adam(1e-4), categorical cross-entropy, batch 64.
// The input is the output of block_12: 12x12x96 for 192x192 images, 10x10x96 for 160x160.
//
//   bench_top_blocks [threads=1,2] [seconds_per_point=2] [json|profile|table] [sizes=192,160] [weights=DIR|random]
//
// weights: the converted Keras MobileNetV2 (tools/flowers.sh converts them into
// ~/.cache/kerascpp/mobilenet_v2_1.0_224_no_top); "random" (or a missing folder): glorot init and
// random BatchNorm statistics. bench/torch_top_blocks.py is PyTorch's twin (same sub-network and
// step) and bench/compare_top_blocks.py runs both alternately and prints the ratios.
// "profile": per-layer forward/backward times of a training step instead.
// "json": one line per point, {"tool": "kerascpp top-blocks-<size>", "threads", "batch", "ips": [...]}.
#include <keras/applications/mobilenet_v2.hpp>
#include <keras/keras.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "top_blocks.hpp"

using keras::Index;
using keras::Tensor;

namespace {

using Clock = std::chrono::steady_clock;
double secs(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

std::vector<int> int_list(const std::string& s) {
  std::vector<int> r;
  std::stringstream ss(s);
  std::string tok;
  while (std::getline(ss, tok, ',')) r.push_back(std::atoi(tok.c_str()));
  return r;
}

/// Per-layer forward and backward times of one training step, layer by layer as the engine runs it
/// (forward(training) into per-node buffers, then backward in reverse; gradients of tensors read
/// twice are summed), medians over `reps` steps. Variable gradients are not applied.
void profile(keras::Model<float>& m, const Tensor<float>& x, int reps) {
  auto& nodes = m.graph().nodes();
  const std::size_t n = nodes.size();
  std::vector<Tensor<float>> out(n), grad(n);
  std::vector<const Tensor<float>*> val(n);
  std::vector<char> has(n);
  std::vector<std::vector<double>> tf(n), tb(n);
  for (int rep = 0; rep < reps; ++rep) {
    for (std::size_t i = 0; i < n; ++i) {
      if (nodes[i].input_index >= 0) {
        val[i] = &x;
        continue;
      }
      std::vector<const Tensor<float>*> ins;
      for (int j : nodes[i].inputs) ins.push_back(val[j]);
      auto t0 = Clock::now();
      nodes[i].layer->forward(ins, out[i], true);
      tf[i].push_back(secs(t0, Clock::now()));
      val[i] = &out[i];
    }
    std::fill(has.begin(), has.end(), 0);
    grad[n - 1].resize(out[n - 1].shape());
    grad[n - 1].setConstant(1e-3f);
    has[n - 1] = 1;
    for (std::size_t i = n; i-- > 0;) {
      if (nodes[i].input_index >= 0 || !has[i]) continue;
      std::vector<const Tensor<float>*> ins;
      std::vector<Tensor<float>*> dins;
      std::vector<Tensor<float>> tmp(nodes[i].inputs.size());  // per input, summed into grad[j] after the call
      for (std::size_t s = 0; s < nodes[i].inputs.size(); ++s) {
        int j = nodes[i].inputs[s];
        ins.push_back(val[j]);
        dins.push_back(nodes[j].input_index >= 0 ? nullptr : &tmp[s]);
      }
      auto t0 = Clock::now();
      nodes[i].layer->backward(ins, out[i], grad[i], dins);
      tb[i].push_back(secs(t0, Clock::now()));
      for (std::size_t s = 0; s < dins.size(); ++s) {
        if (!dins[s]) continue;
        int j = nodes[i].inputs[s];
        if (!has[j]) {
          grad[j] = std::move(tmp[s]);
          has[j] = 1;
        } else
          grad[j].array() += tmp[s].array();
      }
    }
  }
  auto med = [](std::vector<double> v) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::map<std::string, std::pair<double, double>> by_class;
  double tot = 0;
  std::printf("per-layer training step (batch %ld, %d threads; ms, median of %d):\n", long(x.dim(0)),
              keras::get_num_threads(), reps);
  for (std::size_t i = 0; i < n; ++i) {
    if (nodes[i].input_index >= 0) continue;
    double f = med(tf[i]), b = med(tb[i]);
    by_class[nodes[i].layer->class_name()].first += f;
    by_class[nodes[i].layer->class_name()].second += b;
    tot += f + b;
    std::printf("  %-22s %-20s %-18s fwd %6.2f  bwd %6.2f\n", nodes[i].layer->name().c_str(),
                nodes[i].layer->class_name().c_str(), keras::shape_str(out[i].shape()).c_str(), f * 1e3, b * 1e3);
  }
  std::printf("  by class (total %.1f ms):\n", tot * 1e3);
  for (auto& [k, v] : by_class)
    std::printf("    %-20s fwd %7.2f  bwd %7.2f  %5.1f%%\n", k.c_str(), v.first * 1e3, v.second * 1e3,
                100 * (v.first + v.second) / tot);
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<int> threads = int_list(argc > 1 ? argv[1] : "1,2");
  const double budget = argc > 2 ? std::atof(argv[2]) : 2.0;
  const bool json = argc > 3 && std::strcmp(argv[3], "json") == 0;
  const bool do_profile = argc > 3 && std::strcmp(argv[3], "profile") == 0;
  const std::vector<int> sizes = int_list(argc > 4 ? argv[4] : "192,160");
  std::string weights = argc > 5 ? argv[5] : "";
  if (weights.empty()) {
    const char* home = std::getenv("HOME");
    weights = std::string(home ? home : ".") + "/.cache/kerascpp/mobilenet_v2_1.0_224_no_top";
  }
  if (weights != "random" && !std::filesystem::exists(weights + "/model.json")) {
    std::fprintf(stderr,
                 "bench_top_blocks: %s/model.json not found (bash tools/flowers.sh converts it); random weights\n",
                 weights.c_str());
    weights = "random";
  }
  constexpr Index B = 64;
  keras::set_random_seed(42);
  keras::Random rng(42);
  Tensor<float> y({B, 5}, 0.f);
  for (Index i = 0; i < B; ++i) y[i * 5 + i % 5] = 1.f;

  for (int size : sizes) {
    const Index hw = size / 16;  // block_12's output: stride 16
    bench::TopBlocks t = bench::make_top_blocks(hw);
    if (weights == "random")
      bench::randomise_bn(*t.backbone, rng);
    else
      keras::io::load_weights(*t.backbone, weights, /*allow_unused=*/true);
    for (auto& l : t.model->layers())
      if (l->class_name() == "BatchNormalization") l->set_trainable(false);
    t.model->compile(keras::optimizers::Adam<float>({.learning_rate = 1e-4}),
                     keras::losses::CategoricalCrossentropy<float>());
    // block_12's output after the ReLU6s and a residual add: centred, a few units wide
    Tensor<float> x({B, hw, hw, 96});
    for (Index i = 0; i < x.size(); ++i) x[i] = static_cast<float>(rng.normal(0.0, 2.0));
    for (int th : threads) {
      keras::set_num_threads(th);
      for (int i = 0; i < 3; ++i) t.model->train_on_batch(x, y);
      if (do_profile) {
        profile(*t.model, x, 7);
        continue;
      }
      std::vector<double> r;
      const auto start = Clock::now();
      while (r.size() < 5 || (r.size() < 200 && secs(start, Clock::now()) < budget)) {
        const auto t0 = Clock::now();
        t.model->train_on_batch(x, y);
        r.push_back(double(B) / secs(t0, Clock::now()));
      }
      std::vector<double> s = r;
      std::sort(s.begin(), s.end());
      if (json) {
        std::printf(
            "{\"tool\": \"kerascpp top-blocks-%d\", \"threads\": %d, \"batch\": %ld, \"weights\": \"%s\", \"ips\": [",
            size, th, long(B), weights == "random" ? "random" : "keras");
        for (std::size_t i = 0; i < r.size(); ++i) std::printf("%s%.2f", i ? ", " : "", r[i]);
        std::printf("]}\n");
      } else {
        std::printf(
            "top blocks %dx%d (block_13 input %ldx%ldx96), batch %ld, %d thr: %7.1f samples/s median (best %7.1f, %zu "
            "steps)\n",
            size, size, long(hw), long(hw), long(B), th, s[s.size() / 2], s.back(), s.size());
      }
      std::fflush(stdout);
    }
  }
  return 0;
}
