// Precision, Recall, AUC and TopKCategoricalAccuracy against Keras's formulas (and the examples of
// Keras's docstrings), computed by hand; and as compile(metrics=...) names in evaluate.
#include <catch2/catch.hpp>

#include <cmath>
#include <keras/keras.hpp>
#include <random>

using keras::Index;
using keras::Tensor;
namespace km = keras::metrics;

namespace {
Tensor<float> t1(const std::vector<float>& v) {
  Tensor<float> t({static_cast<Index>(v.size())}, 0.f);
  std::copy(v.begin(), v.end(), t.data());
  return t;
}

/// Keras's ROC AUC from its definition: at each threshold t_i (-1e-7, i / (n - 1), 1 + 1e-7) the
/// positives/negatives with prediction > t_i; trapezoids between consecutive thresholds.
double roc_auc_by_definition(const std::vector<float>& y, const std::vector<float>& p, int n) {
  std::vector<double> th{-1e-7};
  for (int i = 1; i <= n - 2; ++i) th.push_back(static_cast<double>(i) / (n - 1));
  th.push_back(1 + 1e-7);
  std::vector<double> tpr, fpr;
  double P = 0, N = 0;
  for (float v : y) (v != 0 ? P : N) += 1;
  for (double t : th) {
    double tp = 0, fp = 0;
    for (std::size_t i = 0; i < y.size(); ++i)
      if (std::min(1.0, std::max(0.0, double(p[i]))) > t) (y[i] != 0 ? tp : fp) += 1;
    tpr.push_back(P ? tp / P : 0);
    fpr.push_back(N ? fp / N : 0);
  }
  double a = 0;
  for (std::size_t i = 0; i + 1 < th.size(); ++i) a += (fpr[i] - fpr[i + 1]) * (tpr[i] + tpr[i + 1]) / 2;
  return a;
}
}  // namespace

TEST_CASE("Precision and Recall: threshold 0.5 (strictly greater), accumulated over batches, class_id", "[metrics]") {
  km::Precision<float> p;
  km::Recall<float> r;
  CHECK(p.name() == "precision");
  CHECK(r.name() == "recall");
  CHECK(p.result() == 0.0);  // divide_no_nan
  // Keras's docstring: update_state([0, 1, 1, 1], [1, 0, 1, 1]) -> precision 2/3, recall 2/3
  p.update_state(t1({0, 1, 1, 1}), t1({1, 0, 1, 1}));
  CHECK(p.result() == Approx(2.0 / 3));
  p.reset_state();
  // y_pred 0.5 is not > 0.5: tp = {0.55, 0.9, 0.7}, fp = {0.6}, tn = {0.5}, fn = none
  auto yt = t1({0, 1, 1, 0, 1}), yp = t1({0.6f, 0.55f, 0.9f, 0.5f, 0.7f});
  p.update_state(yt, yp);
  r.update_state(yt, yp);
  CHECK(p.result() == Approx(0.75));
  CHECK(r.result() == Approx(1.0));
  // a second batch: tp 0, fp 0, fn 2 -> recall 3 / 5, precision unchanged
  p.update_state(t1({1, 1}), t1({0.1f, 0.2f}));
  r.update_state(t1({1, 1}), t1({0.1f, 0.2f}));
  CHECK(p.result() == Approx(0.75));
  CHECK(r.result() == Approx(0.6));
  CHECK(r.false_negatives() == 2);
  // class_id 1 of [[.7 .2] [.6 .8] [.3 .9]] with labels [[1 0] [0 1] [1 0]]: tp 1, fp 1
  km::Precision<float> pc({.thresholds = 0.5, .class_id = 1, .name = "precision_1"});
  Tensor<float> y2({3, 2}, {1, 0, 0, 1, 1, 0}), p2({3, 2}, {.7f, .2f, .6f, .8f, .3f, .9f});
  pc.update_state(y2, p2);
  CHECK(pc.result() == Approx(0.5));
  km::Recall<float> rt({.thresholds = 0.75, .class_id = std::nullopt, .name = "recall"});  // > 0.75: .8 and .9
  rt.update_state(y2, p2);  // every element counts: positives .7 (fn), .8 (tp), .3 (fn)
  CHECK(rt.result() == Approx(1.0 / 3));
  CHECK_THROWS_WITH(p.update_state(t1({1, 0}), t1({1})),
                    Catch::Contains("'precision'") && Catch::Contains("shapes differ"));
}

TEST_CASE("AUC: Keras's docstring example, and 200 thresholds against the definition", "[metrics]") {
  // keras.metrics.AUC(num_thresholds=3).update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9]):
  // tp = [2, 1, 0], fp = [2, 0, 0]; tpr = [1, 0.5, 0], fpr = [1, 0, 0] -> (1 + 0.5) / 2 = 0.75
  km::AUC<float> a3(
      {.num_thresholds = 3, .curve = "ROC", .summation_method = "interpolation", .name = "auc", .from_logits = false});
  a3.update_state(t1({0, 0, 1, 1}), t1({0, 0.5f, 0.3f, 0.9f}));
  CHECK(a3.true_positives() == std::vector<double>{2, 1, 0});
  CHECK(a3.false_positives() == std::vector<double>{2, 0, 0});
  CHECK(a3.result() == Approx(0.75));
  // PR, interpolation (Keras's interpolate_pr_auc), same data: p = tp + fp = [4, 1, 0]
  //   [0,1]: slope 1/3, intercept 1 - 1/3, (1/3) (1 + (2/3) log(4 / 1)) / 2;  [1,2]: slope 1, 1 / 2
  km::AUC<float> pr(
      {.num_thresholds = 3, .curve = "PR", .summation_method = "interpolation", .name = "pr", .from_logits = false});
  pr.update_state(t1({0, 0, 1, 1}), t1({0, 0.5f, 0.3f, 0.9f}));
  CHECK(pr.result() == Approx((1.0 / 3) * (1 + (2.0 / 3) * std::log(4.0)) / 2 + 0.5));
  // ROC minoring / majoring on the same curve: heights min(1, .5) = .5 / max = 1 over fpr 1 -> 0
  km::AUC<float> mi(
      {.num_thresholds = 3, .curve = "ROC", .summation_method = "minoring", .name = "a", .from_logits = false});
  km::AUC<float> ma(
      {.num_thresholds = 3, .curve = "ROC", .summation_method = "majoring", .name = "a", .from_logits = false});
  mi.update_state(t1({0, 0, 1, 1}), t1({0, 0.5f, 0.3f, 0.9f}));
  ma.update_state(t1({0, 0, 1, 1}), t1({0, 0.5f, 0.3f, 0.9f}));
  CHECK(mi.result() == Approx(0.5));
  CHECK(ma.result() == Approx(1.0));

  km::AUC<float> a;  // Keras defaults: 200 thresholds, ROC, interpolation
  CHECK(a.name() == "auc");
  REQUIRE(a.thresholds().size() == 200);
  CHECK(a.thresholds()[0] == Approx(-1e-7));
  CHECK(a.thresholds()[1] == Approx(1.0 / 199));
  CHECK(a.thresholds()[199] == Approx(1 + 1e-7));
  std::mt19937 gen(7);
  std::uniform_real_distribution<float> u(0, 1);
  std::vector<float> y, p;
  for (int b = 0; b < 3; ++b) {  // three batches, accumulated
    std::vector<float> yb, pb;
    for (int i = 0; i < 40; ++i) {
      yb.push_back(u(gen) < 0.4f ? 1.f : 0.f);
      pb.push_back(std::min(1.2f, std::max(-0.1f, 0.35f * yb.back() + 0.8f * u(gen) - 0.05f)));  // some outside [0, 1]
    }
    a.update_state(t1(yb), t1(pb));
    y.insert(y.end(), yb.begin(), yb.end());
    p.insert(p.end(), pb.begin(), pb.end());
  }
  CHECK(a.result() == Approx(roc_auc_by_definition(y, p, 200)).margin(1e-12));
  // and close to the exact (Mann-Whitney) AUC, which the 200 buckets approximate
  double wins = 0, pairs = 0;
  for (std::size_t i = 0; i < y.size(); ++i)
    for (std::size_t j = 0; j < y.size(); ++j)
      if (y[i] == 1 && y[j] == 0) {
        pairs += 1;
        wins += p[i] > p[j] ? 1.0 : p[i] == p[j] ? 0.5 : 0.0;
      }
  CHECK(a.result() == Approx(wins / pairs).margin(0.01));
  a.reset_state();
  CHECK(a.result() == 0.0);
  CHECK_THROWS_WITH(km::AUC<float>({.num_thresholds = 1,
                                    .curve = "ROC",
                                    .summation_method = "interpolation",
                                    .name = "auc",
                                    .from_logits = false}),
                    Catch::Contains("`num_thresholds` must be an integer > 1"));
  CHECK_THROWS_WITH(km::AUC<float>({.num_thresholds = 200,
                                    .curve = "ROCK",
                                    .summation_method = "interpolation",
                                    .name = "auc",
                                    .from_logits = false}),
                    Catch::Contains("Invalid AUC curve value: \"ROCK\""));
}

TEST_CASE("TopKCategoricalAccuracy: k = 5 by default, ties at the k-th value count (in_top_k)", "[metrics]") {
  // rows of 6 classes; true classes 4, 2, 5
  Tensor<float> p({3, 6}, {0.1f, 0.3f, 0.3f, 0.2f, 0.05f, 0.05f,     // class 4: 5th largest is 0.05 -> in
                           0.1f, 0.3f, 0.3f, 0.2f, 0.05f, 0.05f,     // class 2: in
                           0.5f, 0.2f, 0.12f, 0.1f, 0.07f, 0.01f});  // class 5: 6th -> out
  Tensor<float> y({3, 6}, 0.f);
  y[0 * 6 + 4] = 1;
  y[1 * 6 + 2] = 1;
  y[2 * 6 + 5] = 1;
  km::TopKCategoricalAccuracy<float> top5;
  CHECK(top5.name() == "top_k_categorical_accuracy");
  CHECK(top5.k() == 5);
  top5.update_state(y, p);
  CHECK(top5.result() == Approx(2.0 / 3));
  km::TopKCategoricalAccuracy<float> top1(1, "top1");
  top1.update_state(y, p);  // row 1: 0.3 ties the largest -> in
  CHECK(top1.result() == Approx(1.0 / 3));
  auto sparse = km::get<float>("sparse_top_k_categorical_accuracy");
  sparse->update_state(Tensor<float>({3}, {4, 2, 5}), p);
  CHECK(sparse->result() == Approx(2.0 / 3));
  CHECK_THROWS_AS(top5.update_state(Tensor<float>({3, 5}, 0.f), p), keras::ShapeError);
}

TEST_CASE("compile(metrics={precision, recall, auc}) logs them under Keras's names", "[metrics][training]") {
  keras::Sequential<float> m;
  m.add(keras::layers::InputLayer({.shape = {3}}));
  m.add(keras::layers::Dense(1, {.activation = "sigmoid"}));
  m.compile("sgd", "binary_crossentropy", {"precision", "recall", "auc", "accuracy"});
  Tensor<float> x({64, 3}), y({64, 1});
  std::mt19937 gen(3);
  std::normal_distribution<float> n(0, 1);
  for (Index i = 0; i < 64; ++i) {
    for (Index j = 0; j < 3; ++j) x[i * 3 + j] = n(gen);
    y[i] = x[i * 3] + 0.5f * n(gen) > 0 ? 1.f : 0.f;
  }
  auto logs = m.evaluate(x, y, 16);
  auto pred = m.predict(x);
  km::Precision<float> p;
  km::Recall<float> r;
  km::AUC<float> a;
  p.update_state(y, pred);
  r.update_state(y, pred);
  a.update_state(y, pred);
  CHECK(logs.at("precision") == Approx(p.result()));
  CHECK(logs.at("recall") == Approx(r.result()));
  CHECK(logs.at("auc") == Approx(a.result()));
  CHECK(logs.count("accuracy") == 1);
  auto h = m.fit(x, y, {.epochs = 2, .batch_size = 16, .verbose = 0});
  CHECK(h.history.at("auc").size() == 2);
  CHECK_THROWS_WITH(km::get<float>("precison"),
                    Catch::Contains("Unknown metric function: 'precison'") && Catch::Contains("precision"));
}
