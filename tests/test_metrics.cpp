#include <catch2/catch.hpp>

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
