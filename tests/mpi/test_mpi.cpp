// Data-parallel training over MPI (keras/distribute/mpi.hpp), run by ctest under mpirun with 2 and
// 3 processes (tests/mpi/run.sh). One program, one mode per test:
//   equivalence  fit on tensors, on a dataset, and both with the frozen-feature cache, evaluate
//                and predict: every replica's per-epoch logs and final weights match training the
//                same model in this process alone at the same global batch (1e-5 relative), and
//                the replicas' weights are bitwise identical
//   sharding     every training sample is seen exactly once per epoch over all replicas, through
//                tensors and datasets; a sharded dataset source reads only its own items
//   callbacks    chief-only callbacks (CSVLogger, ModelCheckpoint, a custom one) act on rank 0
//                only; EarlyStopping stops every replica at the same epoch
//   dead DIR     trains with a ModelCheckpoint in DIR; rank 1 kills itself in epoch 3 (run.sh:
//                mpirun must end, not hang)
//   hang         rank 1 stops answering in epoch 2: the others time out with a clear error
//   resume DIR   loads DIR's last checkpoint on every replica and resumes at initial_epoch 2
// Exit code 0 when every check passes; each failure prints "FAIL rank r: ...".
#include <keras/callbacks/model_checkpoint.hpp>
#include <keras/distribute/mpi.hpp>
#include <keras/io/tfjs.hpp>
#include <keras/keras.hpp>

#include <unistd.h>

#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <string>
#include <thread>

using namespace keras;
namespace fs = std::filesystem;

namespace {

int failures = 0;
int g_rank = 0;

void fail(const std::string& what) {
  std::cerr << "FAIL rank " << g_rank << ": " << what << "\n" << std::flush;
  ++failures;
}
bool close(double a, double b, double rel = 1e-5) {
  return std::abs(a - b) <= rel * std::max({std::abs(a), std::abs(b), 1e-3});
}

/// A deterministic classification problem: n samples of `features` values, `classes` one-hot.
void make_data(Index n, Index features, Index classes, std::uint64_t seed, Tensor<float>& x, Tensor<float>& y) {
  Random rng(seed);
  x.resize({n, features});
  y.resize({n, classes});
  y.setZero();
  for (Index i = 0; i < n; ++i) {
    double s = 0;
    for (Index j = 0; j < features; ++j) {
      x[i * features + j] = static_cast<float>(rng.uniform(-1.0, 1.0));
      s += x[i * features + j] * (j + 1);
    }
    y[i * classes + (static_cast<Index>(std::floor(std::abs(s) * 2)) % classes)] = 1.f;
  }
}

/// Input(6) -> Dense(8, relu) -> Dense(8, relu) -> Dense(3, softmax), from a fixed seed; the first
/// `frozen` Dense layers frozen (the part fit caches).
std::shared_ptr<Model<float>> make_model(int frozen) {
  set_random_seed(42);
  auto in = Input<float>({6});
  auto h = layers::Dense<float>(8, {.activation = "relu", .name = "hidden"})(in);
  h = layers::Dense<float>(8, {.activation = "relu", .name = "hidden2"})(h);
  auto out = layers::Dense<float>(3, {.activation = "softmax", .name = "out"})(h);
  auto m = std::make_shared<Model<float>>(in, out, "mlp");
  if (frozen >= 1) m->get_layer("hidden")->set_trainable(false);
  if (frozen >= 2) m->get_layer("hidden2")->set_trainable(false);
  m->compile(optimizers::Adam<float>({.learning_rate = 1e-2}), losses::CategoricalCrossentropy<float>(), {"accuracy"});
  return m;
}

std::uint64_t weights_hash(Model<float>& m) {
  std::uint64_t h = 1469598103934665603ull;
  for (auto* v : m.variables()) {
    auto* b = reinterpret_cast<const unsigned char*>(v->value.data());
    for (std::size_t j = 0; j < static_cast<std::size_t>(v->value.size()) * sizeof(float); ++j)
      h = (h ^ b[j]) * 1099511628211ull;
  }
  return h;
}

void compare_histories(const std::string& what, const History& ref, const History& got) {
  if (ref.epoch != got.epoch) return fail(what + ": different epochs");
  for (auto& [k, v] : ref.history) {
    auto it = got.history.find(k);
    if (it == got.history.end()) {
      fail(what + ": no '" + k + "' in the distributed History");
      continue;
    }
    for (std::size_t e = 0; e < v.size(); ++e)
      if (!close(v[e], it->second.at(e)))
        fail(what + ": " + k + " of epoch " + std::to_string(e) + ": one process " + std::to_string(v[e]) +
             ", distributed " + std::to_string(it->second[e]));
  }
}

void compare_weights(const std::string& what, Model<float>& ref, Model<float>& got,
                     distribute::DataParallel<float>& dp) {
  auto a = ref.variables(), b = got.variables();
  for (std::size_t i = 0; i < a.size(); ++i)
    for (Index j = 0; j < a[i]->value.size(); ++j)
      if (!close(a[i]->value[j], b[i]->value[j], 1e-4)) {
        fail(what + ": weight " + a[i]->name + "[" + std::to_string(j) + "]: one process " +
             std::to_string(a[i]->value[j]) + ", distributed " + std::to_string(b[i]->value[j]));
        break;
      }
  const std::uint64_t h = weights_hash(got);
  std::vector<double> differ{dp.broadcast(h) != h ? 1.0 : 0.0};
  dp.all_sum(differ);
  if (differ[0] > 0) fail(what + ": the replicas' weights are not identical");
}

int equivalence(distribute::MPI& mpi) {
  auto dp = distribute::DataParallel<float>::make(mpi);
  const int R = mpi.size();
  Tensor<float> x, y, vx, vy;
  make_data(50, 6, 3, 7, x, y);  // 50 samples: uneven parts and a short last batch
  make_data(17, 6, 3, 8, vx, vy);
  // 0: no cache; 1: the cache of the frozen first layer, computed sharded and gathered; 2: the
  // cache of the first layer (kept: keep_features_of), then the second's derived from it, sharded
  for (int frozen : {0, 1, 2}) {
    const std::string tag = frozen == 0   ? ""
                            : frozen == 1 ? " (frozen-feature cache)"
                                          : " (cache derived from kept features)";
    // tensors: global batch 8 split over the replicas
    FitOptions<float> fo{.epochs = 3, .batch_size = 8, .validation_data = {vx, vy}, .seed = 5, .verbose = 0};
    if (frozen == 2) fo.keep_features_of = "hidden";
    auto ref = make_model(frozen);
    History href = ref->fit(x, y, fo);
    auto dm = make_model(frozen);
    dm->set_distribution(dp);
    History hd = dm->fit(x, y, fo);
    compare_histories("fit(tensors)" + tag, href, hd);
    compare_weights("fit(tensors)" + tag, *ref, *dm, *dp);
    // evaluate and predict: a reduced result on every replica, the predictions in order on the chief
    Logs le = ref->evaluate(vx, vy, 4), ld = dm->evaluate(vx, vy, 4);
    for (auto& [k, v] : le)
      if (!close(v, ld[k]))
        fail("evaluate" + tag + ": " + k + " " + std::to_string(v) + " vs " + std::to_string(ld[k]));
    Tensor<float> pr = ref->predict(vx, 5), pd = dm->predict(vx, 5);
    if (mpi.is_chief()) {
      if (pd.shape() != pr.shape())
        fail("predict" + tag + ": shape " + shape_str(pd.shape()) + ", expected " + shape_str(pr.shape()));
      else
        for (Index i = 0; i < pr.size(); ++i)
          if (!close(pr[i], pd[i])) {
            fail("predict" + tag + ": output " + std::to_string(i) + " differs");
            break;
          }
    } else if (!pd.empty()) {
      fail("predict: a replica other than the chief got predictions");
    }
    // datasets: batches of 2 per replica, one step = R batches = the single process's batch of 2R
    auto ds = data::Dataset<float>::from_tensor_slices(x, y);
    auto vds = data::Dataset<float>::from_tensor_slices(vx, vy);
    FitOptions<float> fd{.epochs = 3, .seed = 5, .verbose = 0};
    if (frozen == 2) fd.keep_features_of = "hidden";
    auto ref2 = make_model(frozen);
    History hr2 = ref2->fit(ds.batch(2 * R), fd, vds.batch(3));
    auto dm2 = make_model(frozen);
    dm2->set_distribution(dp);
    History hd2 = dm2->fit(ds.batch(2), fd, vds.batch(3));
    compare_histories("fit(dataset)" + tag, hr2, hd2);
    compare_weights("fit(dataset)" + tag, *ref2, *dm2, *dp);
    Logs le2 = ref2->evaluate(vds.batch(4)), ld2 = dm2->evaluate(vds.batch(4));
    for (auto& [k, v] : le2)
      if (!close(v, ld2[k])) fail("evaluate(dataset)" + tag + ": " + k);
    Tensor<float> pr2 = ref2->predict(vds.batch(4)), pd2 = dm2->predict(vds.batch(4));
    if (mpi.is_chief() && (pd2.shape() != pr2.shape() || !close(pr2[pr2.size() - 1], pd2[pd2.size() - 1])))
      fail("predict(dataset)" + tag + ": not the single-process outputs in order");
  }
  if (mpi.is_chief() && failures == 0)
    std::cout << "equivalence: " << R << " replicas = one process, tensors, datasets, cached, evaluate, predict\n";
  return failures;
}

/// Identity that records the first feature (a sample id) of every row it trains on.
class RecordIds : public layers::Layer<float> {
 public:
  KERAS_LAYER(RecordIds)
  RecordIds() : layers::Layer<float>("record_ids") {}
  std::vector<int> seen;
  Shape compute_output_shape(const std::vector<Shape>& in) const override { return in.at(0); }
  bool cacheable() const override { return false; }
  void forward(const Inputs& in, Tensor<float>& y, bool training) override {
    const Tensor<float>& x = *in.at(0);
    y = x;
    if (training)
      for (Index r = 0; r < x.dim(0); ++r) seen.push_back(static_cast<int>(std::lround(x[r * x.dim(1)])));
  }
  void backward(const Inputs&, const Tensor<float>&, const Tensor<float>& dy, const GradInputs& dx) override {
    if (dx.at(0)) *dx[0] = dy;
  }
};

/// Every id 0..n-1 exactly once in the union of the replicas' `seen` (gathered on every replica).
void check_once(const std::string& what, distribute::DataParallel<float>& dp, const std::vector<int>& seen, int n) {
  std::vector<double> counts(static_cast<std::size_t>(n), 0.0);
  for (int id : seen) {
    if (id < 0 || id >= n) return fail(what + ": unknown sample id " + std::to_string(id));
    counts[static_cast<std::size_t>(id)] += 1;
  }
  dp.all_sum(counts);
  for (int i = 0; i < n; ++i)
    if (counts[static_cast<std::size_t>(i)] != 1)
      return fail(what + ": sample " + std::to_string(i) + " trained on " +
                  std::to_string(counts[static_cast<std::size_t>(i)]) + " times in an epoch");
}

int sharding(distribute::MPI& mpi) {
  auto dp = distribute::DataParallel<float>::make(mpi);
  const int n = 23, R = mpi.size();
  Tensor<float> x({n, 2}), y({n, 2});
  y.setZero();
  for (int i = 0; i < n; ++i) {
    x[2 * i] = static_cast<float>(i);
    x[2 * i + 1] = 0.5f;
    y[2 * i + (i % 2)] = 1;
  }
  auto build = [&] {
    auto in = Input<float>({2});
    auto rec = std::make_shared<RecordIds>();
    auto h = rec->operator()(in);
    auto out = layers::Dense<float>(2, {.activation = "softmax"})(h);
    auto m = std::make_shared<Model<float>>(in, out);
    m->compile("sgd", "categorical_crossentropy");
    m->set_distribution(dp);
    return std::make_pair(m, rec);
  };
  // a callback that checks each epoch's ids and starts the next
  struct PerEpoch : callbacks::Callback<float> {
    std::function<void(int)> f;
    void on_epoch_end(int e, Logs&) override { f(e); }
  };
  for (int mode = 0; mode < 3; ++mode) {
    auto [m, rec] = build();
    const std::string what = mode == 0 ? "fit(tensors)" : mode == 1 ? "fit(dataset)" : "fit(shuffled parallel source)";
    auto cb = std::make_shared<PerEpoch>();
    cb->f = [&, rec = rec](int e) {
      check_once(what + " epoch " + std::to_string(e), *dp, rec->seen, n);
      rec->seen.clear();
    };
    FitOptions<float> fo{.epochs = 3, .batch_size = 5, .seed = 3, .verbose = 0, .cache_frozen = false};
    fo.callbacks = {cb};
    if (mode == 0) {
      m->fit(x, y, fo);
    } else if (mode == 1) {
      m->fit(data::Dataset<float>::from_tensor_slices(x, y).batch(2), fo);
    } else {
      // an indexed source, shuffled every epoch, read on 2 threads: each replica reads only its items
      auto reads = std::make_shared<std::atomic<int>>(0);
      Tensor<float> xs = x, ys = y;
      auto src = data::Dataset<float>::from_indexed(n,
                                                    [=](Index i) {
                                                      ++*reads;
                                                      return std::optional<data::Batch<float>>(data::Batch<float>{
                                                          data::detail::row_of(xs, i), data::detail::row_of(ys, i)});
                                                    },
                                                    {.shuffle = true, .seed = 11, .parallel = true});
      m->fit(src.batch(2).prefetch(2), fo);
      // batches of 2, every R-th: this replica's items, 3 epochs
      const int batches = (n + 1) / 2;
      int mine = 0;
      for (int b = mpi.rank(); b < batches; b += R) mine += std::min(2, n - 2 * b);
      if (reads->load() != 3 * mine)
        fail("sharded source: read " + std::to_string(reads->load()) + " items in 3 epochs, its shard has " +
             std::to_string(mine) + " per epoch");
    }
  }
  // Dataset::shard itself: disjoint, complete, in order; and its errors
  auto d = data::Dataset<float>::from_tensor_slices(x, y);
  std::vector<int> got;
  for (auto& b : d.shard(R, mpi.rank())) got.push_back(static_cast<int>(b.x[0]));
  for (std::size_t k = 0; k < got.size(); ++k)
    if (got[k] != mpi.rank() + static_cast<int>(k) * R)
      fail("Dataset::shard: element " + std::to_string(k) + " is " + std::to_string(got[k]));
  check_once("Dataset::shard", *dp, got, n);
  try {
    d.shard(2, 2);
    fail("Dataset::shard(2, 2) did not throw");
  } catch (const ValueError& e) {
    if (std::string(e.what()).find("index must be in [0, num_shards)") == std::string::npos)
      fail(std::string("shard error: ") + e.what());
  }
  if (mpi.is_chief() && failures == 0)
    std::cout << "sharding: every sample exactly once per epoch on " << R << " replicas\n";
  return failures;
}

int callbacks_test(distribute::MPI& mpi, const fs::path& dir) {
  auto dp = distribute::DataParallel<float>::make(mpi);
  Tensor<float> x, y;
  make_data(40, 6, 3, 9, x, y);
  auto m = make_model(0);
  m->set_distribution(dp);
  struct Count : callbacks::Callback<float> {
    bool chief;
    int epochs = 0;
    explicit Count(bool c) : chief(c) {}
    bool chief_only() const override { return chief; }
    void on_epoch_end(int, Logs&) override { ++epochs; }
  };
  auto chief_cb = std::make_shared<Count>(true), all_cb = std::make_shared<Count>(false);
  const std::string r = std::to_string(mpi.rank());
  FitOptions<float> fo{.epochs = 20, .batch_size = 8, .validation_split = 0.25, .seed = 1, .verbose = 1};
  // EarlyStopping on a value that stops improving at once (min_delta too large): epoch 3 on every replica
  fo.callbacks = {std::make_shared<callbacks::CSVLogger<float>>((dir / ("history_rank" + r + ".csv")).string()),
                  std::make_shared<callbacks::ModelCheckpoint<float>>((dir / ("ckpt_rank" + r)).string()),
                  std::make_shared<callbacks::EarlyStopping<float>>(
                      callbacks::EarlyStoppingOptions{.monitor = "val_loss", .min_delta = 10.0, .patience = 2}),
                  chief_cb, all_cb};
  History h = m->fit(x, y, fo);
  if (h.epoch.size() != 3) fail("EarlyStopping: " + std::to_string(h.epoch.size()) + " epochs, expected 3");
  if (all_cb->epochs != 3) fail("a callback for every replica ran " + std::to_string(all_cb->epochs) + " epochs");
  if (chief_cb->epochs != (mpi.is_chief() ? 3 : 0))
    fail("a chief-only callback ran " + std::to_string(chief_cb->epochs) + " epochs");
  const bool csv = fs::exists(dir / ("history_rank" + r + ".csv")),
             ckpt = fs::exists(dir / ("ckpt_rank" + r) / "model.json");
  if (csv != mpi.is_chief())
    fail(std::string("CSVLogger ") + (csv ? "wrote on a replica other than the chief" : "did not write on the chief"));
  if (ckpt != mpi.is_chief())
    fail(std::string("ModelCheckpoint ") +
         (ckpt ? "saved on a replica other than the chief" : "did not save on the chief"));
  if (mpi.is_chief()) {
    std::ifstream f(dir / "history_rank0.csv");
    std::string line;
    int lines = 0;
    while (std::getline(f, line)) ++lines;
    if (lines != 4) fail("history csv: " + std::to_string(lines) + " lines, expected a header and 3 epochs");
    auto loaded = io::load_model<float>((dir / "ckpt_rank0").string());
    if (weights_hash(*loaded) != weights_hash(*m)) fail("the checkpoint is not the final model");
  }
  if (mpi.is_chief() && failures == 0)
    std::cout << "callbacks: chief-only on rank 0, EarlyStopping at epoch 3 everywhere\n";
  return failures;
}

/// Training with a checkpoint per epoch; `fault` strikes rank 1 at the start of epoch `at`.
int faulty(distribute::MPI& mpi, const fs::path& dir, const std::string& fault, int at) {
  auto dp = distribute::DataParallel<float>::make(mpi);
  Tensor<float> x, y;
  make_data(40, 6, 3, 9, x, y);
  auto m = make_model(0);
  m->set_distribution(dp);
  struct Fault : callbacks::Callback<float> {
    int rank = 0, at = 0;
    std::string what;
    void on_epoch_begin(int e, const Logs&) override {
      if (rank != 1 || e != at) return;
      if (what == "dead") {
        std::cerr << "rank 1: killing myself (SIGKILL) at the start of epoch " << e + 1 << "\n" << std::flush;
        std::raise(SIGKILL);
      }
      std::cerr << "rank 1: hanging (no more collectives) at the start of epoch " << e + 1 << "\n" << std::flush;
      std::this_thread::sleep_for(std::chrono::seconds(600));
    }
  };
  auto f = std::make_shared<Fault>();
  f->rank = mpi.rank();
  f->at = at;
  f->what = fault;
  FitOptions<float> fo{.epochs = 6, .batch_size = 8, .seed = 1, .verbose = 0};
  fo.callbacks = {f, std::make_shared<callbacks::ModelCheckpoint<float>>((dir / "ckpt").string())};
  m->fit(x, y, fo);
  fail("training went on past the fault");
  return 1;
}

int resume(distribute::MPI& mpi, const fs::path& dir) {
  auto dp = distribute::DataParallel<float>::make(mpi);
  Tensor<float> x, y;
  make_data(40, 6, 3, 9, x, y);
  auto m = io::load_model<float>((dir / "ckpt").string());
  if (!m->compiled())
    m->compile(optimizers::Adam<float>({.learning_rate = 1e-2}), losses::CategoricalCrossentropy<float>(),
               {"accuracy"});
  m->set_distribution(dp);
  History h = m->fit(x, y, {.epochs = 4, .batch_size = 8, .seed = 1, .verbose = 0, .initial_epoch = 2});
  if (h.epoch != std::vector<int>{2, 3})
    fail("resume: epochs " + std::to_string(h.epoch.size()) + ", expected 2 and 3");
  if (!std::isfinite(h["loss"].back())) fail("resume: loss is not finite");
  const std::uint64_t hw = weights_hash(*m);
  std::vector<double> differ{dp->broadcast(hw) != hw ? 1.0 : 0.0};
  dp->all_sum(differ);
  if (differ[0] > 0) fail("resume: the replicas' weights differ");
  if (mpi.is_chief() && failures == 0)
    std::cout << "resume: loaded the last checkpoint, trained epochs 3 and 4 on " << mpi.size() << " replicas\n";
  return failures;
}

}  // namespace

int main(int argc, char** argv) {
  distribute::MPI mpi(argc, argv);
  g_rank = mpi.rank();
  set_num_threads(1);
  const std::string mode = argc > 1 ? argv[1] : "";
  const fs::path dir = argc > 2 ? argv[2] : ".";
  try {
    int rc = 2;
    if (mode == "equivalence")
      rc = equivalence(mpi);
    else if (mode == "sharding")
      rc = sharding(mpi);
    else if (mode == "callbacks")
      rc = callbacks_test(mpi, dir);
    else if (mode == "dead")
      rc = faulty(mpi, dir, "dead", 2);
    else if (mode == "hang")
      rc = faulty(mpi, dir, "hang", 1);
    else if (mode == "resume")
      rc = resume(mpi, dir);
    else
      std::cerr << "usage: test_mpi equivalence|sharding|callbacks|dead DIR|hang DIR|resume DIR\n";
    return rc == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "test_mpi: rank " << mpi.rank() << ": error: " << e.what() << "\n" << std::flush;
    mpi.mark_failed();
    return 1;
  }
}
