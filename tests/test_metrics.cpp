#include <catch2/catch.hpp>

#include <keras/metrics/confusion_matrix.hpp>
#include <keras/metrics/metrics.hpp>

using keras::Shape;
using keras::Tensor;
namespace metrics = keras::metrics;

TEST_CASE("Mean is a running mean weighted by counts", "[metrics]") {
  metrics::Mean<float> m("loss");
  CHECK(m.result() == 0.0);  // divide_no_nan
  m.update_state(2.0, 4);    // batch of 4 with mean loss 2
  m.update_state(5.0, 2);    // batch of 2 with mean loss 5
  CHECK(m.result() == Approx((2.0 * 4 + 5.0 * 2) / 6));
  CHECK(m.count() == 6);
  CHECK(m.name() == "loss");
  m.reset_state();
  CHECK(m.result() == 0.0);
  m.update_state(3.0);
  CHECK(m.result() == 3.0);
  CHECK_THROWS_AS(m.update_state(Tensor<float>({1}, {0.f}), Tensor<float>({1}, {0.f})), keras::StateError);
}

TEST_CASE("CategoricalAccuracy over two batches, ties take the first index", "[metrics]") {
  metrics::CategoricalAccuracy<float> acc;
  CHECK(acc.name() == "categorical_accuracy");
  // batch 1: 3 samples, 2 correct
  acc.update_state(Tensor<float>({3, 3}, {0, 1, 0, 1, 0, 0, 0, 0, 1}),
                   Tensor<float>({3, 3}, {0.1f, 0.8f, 0.1f, 0.2f, 0.7f, 0.1f, 0.0f, 0.1f, 0.9f}));
  CHECK(acc.result() == Approx(2.0 / 3));
  // batch 2: 1 sample, a tie [0.5, 0.5, 0]: argmax is 0 (first), label 0 -> correct
  acc.update_state(Tensor<float>({1, 3}, {1, 0, 0}), Tensor<float>({1, 3}, {0.5f, 0.5f, 0.0f}));
  CHECK(acc.result() == Approx(3.0 / 4));
  // a tie with label 1 is wrong
  acc.update_state(Tensor<float>({1, 3}, {0, 1, 0}), Tensor<float>({1, 3}, {0.5f, 0.5f, 0.0f}));
  CHECK(acc.result() == Approx(3.0 / 5));
  acc.reset_state();
  CHECK(acc.result() == 0.0);
  CHECK_THROWS_AS(acc.update_state(Tensor<float>({2, 3}, 0.f), Tensor<float>({2, 4}, 0.f)), keras::ShapeError);

  // NHWC segmentation: per-sample mean over pixels, then mean over samples.
  metrics::CategoricalAccuracy<float> seg;
  // 2 samples x 2 pixels x 2 classes; sample 0: 1 of 2 pixels right; sample 1: 2 of 2.
  seg.update_state(Tensor<float>({2, 2, 2}, {1, 0, 0, 1, 1, 0, 1, 0}),
                   Tensor<float>({2, 2, 2}, {0.9f, 0.1f, 0.8f, 0.2f, 0.6f, 0.4f, 0.7f, 0.3f}));
  CHECK(seg.result() == Approx(0.75));
}

TEST_CASE("SparseCategoricalAccuracy and BinaryAccuracy", "[metrics]") {
  metrics::SparseCategoricalAccuracy<float> s;
  Tensor<float> pred({4, 3}, {0.1f, 0.6f, 0.3f, 0.05f, 0.95f, 0.f, 0.4f, 0.3f, 0.3f, 0.2f, 0.2f, 0.6f});
  s.update_state(Tensor<float>({4}, {1, 2, 0, 2}), pred);  // 3 of 4
  CHECK(s.result() == Approx(0.75));
  s.update_state(Tensor<float>({2, 1}, {0, 0}), Tensor<float>({2, 2}, {0.9f, 0.1f, 0.2f, 0.8f}));  // 1 of 2
  CHECK(s.result() == Approx(4.0 / 6));
  CHECK_THROWS_AS(s.update_state(Tensor<float>({3}, {0, 1, 2}), pred), keras::ShapeError);

  metrics::BinaryAccuracy<float> b;
  CHECK(b.threshold() == 0.5);
  // 0.5 is not > 0.5 -> predicted 0.
  b.update_state(Tensor<float>({4, 1}, {1, 0, 0, 1}), Tensor<float>({4, 1}, {0.98f, 0.5f, 0.7f, 0.2f}));
  CHECK(b.result() == Approx(0.5));
  b.update_state(Tensor<float>({2}, {1, 1}), Tensor<float>({2, 1}, {0.9f, 0.6f}));  // [N] vs [N,1]
  CHECK(b.result() == Approx(4.0 / 6));
  metrics::BinaryAccuracy<float> b7("binary_accuracy", 0.7);
  b7.update_state(Tensor<float>({2}, {1, 0}), Tensor<float>({2}, {0.75f, 0.7f}));
  CHECK(b7.result() == Approx(1.0));

  metrics::Accuracy<float> exact;
  exact.update_state(Tensor<float>({2, 2}, {1, 2, 3, 4}), Tensor<float>({2, 2}, {1, 2, 3, 0}));
  CHECK(exact.result() == Approx((1.0 + 0.5) / 2));  // per-sample means 1 and 0.5
}

TEST_CASE("'accuracy' resolves like Keras", "[metrics]") {
  using K = metrics::AccuracyKind;
  // From the actual label / prediction shapes (compile_utils.is_binary_or_sparse_categorical).
  CHECK(metrics::resolve_accuracy(Shape{8, 1}, Shape{8, 1}) == K::Binary);
  CHECK(metrics::resolve_accuracy(Shape{8}, Shape{8, 5}) == K::SparseCategorical);
  CHECK(metrics::resolve_accuracy(Shape{8, 1}, Shape{8, 5}) == K::SparseCategorical);
  CHECK(metrics::resolve_accuracy(Shape{8, 5}, Shape{8, 5}) == K::Categorical);
  // From the loss and the output shape, at compile time.
  CHECK(metrics::resolve_accuracy("categorical_crossentropy", Shape{-1, 5}) == K::Categorical);
  CHECK(metrics::resolve_accuracy("sparse_categorical_crossentropy", Shape{-1, 5}) == K::SparseCategorical);
  CHECK(metrics::resolve_accuracy("binary_crossentropy", Shape{-1, 1}) == K::Binary);
  CHECK(metrics::resolve_accuracy("mean_squared_error", Shape{-1, 1}) == K::Binary);

  auto m = metrics::get<float>("accuracy", "sparse_categorical_crossentropy", {-1, 3});
  CHECK(m->name() == "accuracy");
  m->update_state(Tensor<float>({2}, {2, 0}), Tensor<float>({2, 3}, {0.1f, 0.2f, 0.7f, 0.1f, 0.8f, 0.1f}));
  CHECK(m->result() == Approx(0.5));
  auto c = metrics::get<float>("acc", "categorical_crossentropy", {-1, 3});
  CHECK(c->name() == "acc");
  CHECK(dynamic_cast<metrics::CategoricalAccuracy<float>*>(c.get()) != nullptr);
  auto bin = metrics::get<float>("Accuracy", "binary_crossentropy", {-1, 1});  // Keras lowercases the identifier
  CHECK(dynamic_cast<metrics::BinaryAccuracy<float>*>(bin.get()) != nullptr);
  auto sh = metrics::get_for_shapes<float>("accuracy", {4, 1}, {4, 10});
  CHECK(dynamic_cast<metrics::SparseCategoricalAccuracy<float>*>(sh.get()) != nullptr);

  CHECK(metrics::get<float>("categorical_accuracy")->name() == "categorical_accuracy");
  CHECK(metrics::get<float>("sparse_categorical_accuracy")->name() == "sparse_categorical_accuracy");
  CHECK(metrics::get<float>("binary_accuracy")->name() == "binary_accuracy");
  auto mse = metrics::get<float>("mse");
  CHECK(mse->name() == "mse");
  mse->update_state(Tensor<float>({2, 1}, {0, 0}), Tensor<float>({2, 1}, {1, 3}));
  CHECK(mse->result() == Approx(5.0));
  CHECK_THROWS_AS(metrics::get<float>("f1_scoreish"), keras::ValueError);
  CHECK_THROWS_WITH(metrics::get<float>("f1_scoreish"), Catch::Contains("'f1_scoreish'"));
}

TEST_CASE("confusion_matrix and classification_report follow scikit-learn's definitions", "[metrics][report]") {
  // 3 classes, 8 samples, counted by hand
  const std::vector<int> y_true = {0, 0, 0, 1, 1, 2, 2, 2};
  const std::vector<int> y_pred = {0, 1, 0, 1, 2, 2, 2, 0};
  auto cm = keras::metrics::confusion_matrix(y_true, y_pred, 3);
  CHECK(cm == std::vector<std::vector<long>>{{2, 1, 0}, {0, 1, 1}, {1, 0, 2}});
  auto r = keras::metrics::classification_report(cm, {"a", "b", "c"});
  // class a: tp 2, predicted 3, actual 3 -> p = r = 2/3; b: tp 1, predicted 2, actual 2 -> 1/2; c: tp 2, predicted 3,
  // actual 3
  CHECK(r.classes[0].precision == Approx(2.0 / 3));
  CHECK(r.classes[1].recall == Approx(0.5));
  CHECK(r.classes[2].f1 == Approx(2.0 / 3));
  CHECK(r.accuracy == Approx(5.0 / 8));
  CHECK(r.macro.f1 == Approx((2.0 / 3 + 0.5 + 2.0 / 3) / 3));
  CHECK(r.weighted.precision == Approx((3 * 2.0 / 3 + 2 * 0.5 + 3 * 2.0 / 3) / 8));
  CHECK(r.total == 8);
  const std::string table = r.str();
  CHECK(table.find("precision") != std::string::npos);
  CHECK(table.find("weighted avg") != std::string::npos);
  CHECK(table.find("0.6250") != std::string::npos);  // accuracy
  // a class never predicted: precision 0 (sklearn's zero_division default, without the warning)
  auto r2 = keras::metrics::classification_report(keras::metrics::confusion_matrix({0, 1}, {0, 0}, 2));
  CHECK(r2.classes[1].precision == 0);
  CHECK(r2.classes[1].name == "1");
  CHECK_THROWS_WITH(keras::metrics::confusion_matrix({0, 3}, {0, 0}, 2), Catch::Contains("not a class index"));
  keras::Tensor<float> scores({2, 3});
  scores.setZero();
  scores.at({0, 2}) = 1;
  scores.at({1, 1}) = 0.5f;
  CHECK(keras::metrics::argmax_rows(scores) == std::vector<int>{2, 1});
}
