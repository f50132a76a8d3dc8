#include <catch2/catch.hpp>
#include <keras/core/core.hpp>

using keras::Tensor;

TEST_CASE("Tensor views are row-major and resize keeps the buffer", "[core]") {
  Tensor<float> t({2, 3}, {1, 2, 3, 4, 5, 6});
  CHECK(t.tensor<2>()(1, 0) == 4);
  CHECK(t.matrix()(0, 2) == 3);
  const float* p = t.data();
  t.resize({1, 3});
  CHECK(t.data() == p);
  CHECK(t.shape() == keras::Shape{1, 3});
  t.resize({4, 4});
  CHECK(t.size() == 16);
  CHECK_THROWS_AS(t.reshape({5, 3}), keras::ShapeError);
  CHECK_THROWS_AS((Tensor<float>({2}, {1, 2, 3})), keras::ShapeError);
}

TEST_CASE("shape_str formats like Keras", "[core]") {
  CHECK(keras::shape_str({-1, 32, 32, 3}) == "(None, 32, 32, 3)");
  CHECK(keras::shape_str({5}) == "(5,)");
}

TEST_CASE("slice_rows copies a batch", "[core]") {
  Tensor<double> t({3, 2}, {1, 2, 3, 4, 5, 6});
  auto s = t.slice_rows(1, 2);
  CHECK(s.shape() == keras::Shape{2, 2});
  CHECK(s[0] == 3);
  CHECK_THROWS_AS(t.slice_rows(2, 2), keras::ShapeError);
}

TEST_CASE("Copying an empty tensor gives an empty tensor", "[core]") {
  Tensor<float> a;
  Tensor<float> b = a;
  CHECK(b.size() == 0);
  std::vector<Tensor<float>> v;
  v.assign(3, Tensor<float>());
  CHECK(v[2].empty());
}
