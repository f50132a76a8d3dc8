// MobileNetV2-192 (include_top=false, pooling="avg") throughput, the real applications::MobileNetV2
// graph with random weights and randomised BatchNorm moving statistics.
//
//   bench_mobilenet [max_threads=2] [seconds_per_point=1.5] [profile|json]
//
// For threads 1..max_threads:
//   infer b=1/8/32   frozen model (inference: BN moving stats), model(x), images/s (median, best)
//   train b=32       model trainable, BN in training mode, + Dense(5, softmax) head, CCE + Adam:
//                    one train_on_batch (forward + backward + update), images/s
// Each point is followed by an in-process reference: one GEMM [1024x512]x[512x420] (ops::gemm)
// (0.44 GFLOP, the FLOPs of one MobileNetV2-192 image) on the same number of threads; "ratio" =
// model images/s divided by reference GEMMs/s (training does ~3x the FLOPs of inference, so
// a training ratio of 0.33 would match the GEMM's efficiency). Ratios are comparable across
// noisy runs; absolute numbers are not.
// "profile": per-layer times of one batch-32 inference (layers in graph order, top 25).
// "json": one JSON line per point instead of the table, {"tool", "threads", "batch", "ips": [...]}
//         like the peer scripts in ../shared/bench/peers (bench/compare_peers.py reads them).
#include <keras/applications/mobilenet_v2.hpp>
#include <keras/keras.hpp>

#include "bench_util.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

using keras::Index;
using keras::Tensor;

namespace {

using Clock = std::chrono::steady_clock;
double secs(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

struct Stat {
  double median = 0, best = 0;
  std::vector<double> all;
};

/// Runs f (which processes `items` images) for ~`budget` seconds after `warm` warm-up calls.
template <class F>
Stat rate(F&& f, double items, double budget, int warm = 3, int min_reps = 3, int max_reps = 50) {
  for (int i = 0; i < warm; ++i) f();
  std::vector<double> r;
  auto start = Clock::now();
  while ((int)r.size() < min_reps || ((int)r.size() < max_reps && secs(start, Clock::now()) < budget)) {
    auto t0 = Clock::now();
    f();
    r.push_back(items / secs(t0, Clock::now()));
  }
  std::vector<double> all = r;
  std::sort(r.begin(), r.end());
  return {r[r.size() / 2], r.back(), all};
}

Tensor<float> random_tensor(const keras::Shape& s, keras::Random& rng, double lo, double hi) {
  Tensor<float> t(s);
  for (Index i = 0; i < t.size(); ++i) t[i] = static_cast<float>(rng.uniform(lo, hi));
  return t;
}

/// Reference: one GEMM of 0.44 GFLOP, keras::ops::gemm (Eigen's kernel, split over
/// keras::get_num_threads() threads).
struct Reference {
  Eigen::MatrixXf a = Eigen::MatrixXf::Random(1024, 512), b = Eigen::MatrixXf::Random(512, 420), c{1024, 420};
  Stat run(double budget) {
    return rate(
        [&] {
          keras::ops::gemm<float>(false, false, 1024, 420, 512, 1.f, a.data(), 512, b.data(), 420, 0.f, c.data(), 420);
        },
        1.0, budget, 3, 5, 200);
  }
};

void profile(keras::Model<float>& model, const Tensor<float>& x) {
  auto& g = model.graph();
  auto& nodes = g.nodes();
  std::vector<Tensor<float>> bufs(nodes.size());
  std::vector<const Tensor<float>*> vals(nodes.size());
  std::vector<double> t(nodes.size(), 0.0);
  for (int rep = 0; rep < 4; ++rep)
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      if (nodes[i].input_index >= 0) {
        vals[i] = &x;
        continue;
      }
      std::vector<const Tensor<float>*> ins;
      for (int j : nodes[i].inputs) ins.push_back(vals[j]);
      auto t0 = Clock::now();
      nodes[i].layer->forward(ins, bufs[i], false);
      if (rep >= 1) t[i] += secs(t0, Clock::now()) / 3;
      vals[i] = &bufs[i];
    }
  std::map<std::string, double> by_class;
  double total = 0;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    by_class[nodes[i].layer->class_name()] += t[i];
    total += t[i];
  }
  std::printf("\nper-layer profile (unfused layer-by-layer, batch %ld, %d threads): total %.1f ms\n", long(x.dim(0)),
              keras::get_num_threads(), total * 1e3);
  for (auto& [k, v] : by_class) std::printf("  %-24s %8.2f ms  %5.1f%%\n", k.c_str(), v * 1e3, 100 * v / total);
  std::vector<std::size_t> idx(nodes.size());
  for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  std::sort(idx.begin(), idx.end(), [&](auto a, auto b) { return t[a] > t[b]; });
  for (std::size_t k = 0; k < std::min<std::size_t>(25, idx.size()); ++k) {
    auto& n = nodes[idx[k]];
    std::printf("  %-28s %-20s %-22s %7.2f ms\n", n.layer->name().c_str(), n.layer->class_name().c_str(),
                keras::shape_str(bufs[idx[k]].shape()).c_str(), t[idx[k]] * 1e3);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int max_threads = argc > 1 ? std::atoi(argv[1]) : 2;
  const double budget = argc > 2 ? std::atof(argv[2]) : 1.5;
  const bool do_profile = argc > 3 && std::strcmp(argv[3], "profile") == 0;
  const bool json = argc > 3 && std::strcmp(argv[3], "json") == 0;
  auto emit = [&](const char* what, int th, Index b, const Stat& s) {
    if (!json) return;
    std::printf("{\"tool\": \"kerascpp %s\", \"threads\": %d, \"batch\": %ld, \"ips\": [", what, th, long(b));
    for (std::size_t i = 0; i < s.all.size(); ++i) std::printf("%s%.3f", i ? ", " : "", s.all[i]);
    std::printf("]}\n");
    std::fflush(stdout);
  };
  keras::Random rng(42);
  keras::set_random_seed(42);

  auto base =
      keras::applications::MobileNetV2<float>({.input_shape = {192, 192, 3}, .include_top = false, .pooling = "avg"});
  randomise_bn(*base, rng);
  if (const char* sl = std::getenv("KERAS_BENCH_SLICE")) base->graph().set_inference_slice(std::atoi(sl));
  const double gflop_img = 0.4401;
  Reference ref;

  struct Row {
    std::string what;
    int threads;
    Index batch;
    Stat s, r;
  };
  std::vector<Row> rows;
  std::map<Index, Tensor<float>> inputs;
  for (Index b : {1, 8, 32}) inputs[b] = random_tensor({b, 192, 192, 3}, rng, -1, 1);

  // training model: base (trainable, BN in batch mode) + Dense head
  auto in = keras::Input<float>({192, 192, 3});
  auto feat = (*base)(in);
  auto out = keras::layers::Dense<float>(5, {.activation = "softmax", .name = "head"})(feat);
  auto train_model = std::make_shared<keras::Model<float>>(in, out, "finetune");
  train_model->compile(keras::optimizers::Adam<float>(), keras::losses::CategoricalCrossentropy<float>());
  Tensor<float> y({32, 5}, 0.f);
  for (Index i = 0; i < 32; ++i) y[i * 5 + i % 5] = 1.f;

  for (int th = 1; th <= max_threads; ++th) {
    keras::set_num_threads(th);
    base->set_trainable(false);
    for (Index b : {1, 8, 32}) {
      const Tensor<float>& x = inputs[b];
      Stat s = rate([&] { (*base)(x); }, double(b), budget);
      Stat r = ref.run(budget / 3);
      rows.push_back({"inference", th, b, s, r});
      emit("infer", th, b, s);
      if (!json)
        std::printf("  [%d thr] inference b=%-2ld %7.1f img/s (best %7.1f)   ref %6.1f/s\n", th, long(b), s.median,
                    s.best, r.median);
      std::fflush(stdout);
    }
    base->set_trainable(true);
    {
      const Tensor<float>& x = inputs[32];
      Stat s = rate([&] { train_model->train_on_batch(x, y); }, 32.0, budget * 2, 3, 3, 10);
      Stat r = ref.run(budget / 3);
      rows.push_back({"train step", th, 32, s, r});
      emit("train-full", th, 32, s);
      if (!json)
        std::printf("  [%d thr] train     b=32 %7.1f img/s (best %7.1f)   ref %6.1f/s\n", th, s.median, s.best,
                    r.median);
      std::fflush(stdout);
    }
  }

  if (json) return 0;
  std::printf(
      "\nMobileNetV2-192 (include_top=False, pooling=avg), %.4f GFLOP/img forward; reference = Eigen GEMM 1024x512x420 "
      "(0.44 GFLOP)\n",
      gflop_img);
  std::printf(
      "| mode       | thr | batch | img/s median | img/s best | GFLOP/s | ref GEMM/s | ratio (img/s / ref) |\n");
  std::printf(
      "|------------|-----|-------|--------------|------------|---------|------------|---------------------|\n");
  for (auto& r : rows) {
    double flop = r.what == "inference" ? gflop_img : 3 * gflop_img;
    std::printf("| %-10s | %3d | %5ld | %12.1f | %10.1f | %7.1f | %10.1f | %19.3f |\n", r.what.c_str(), r.threads,
                long(r.batch), r.s.median, r.s.best, r.s.median * flop, r.r.median, r.s.median / r.r.median);
  }
  if (do_profile) {
    base->set_trainable(false);
    for (int th = 1; th <= max_threads; ++th) {
      keras::set_num_threads(th);
      profile(*base, inputs[32]);
      profile(*base, inputs[1]);
    }
  }
  return 0;
}
