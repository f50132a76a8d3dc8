// Evaluation summaries of a classifier, as scikit-learn prints them (Keras users reach for it):
// the confusion matrix and the per-class precision / recall / F1 report.
#pragma once
#include <cstdio>
#include <string>
#include <vector>

#include "../core/core.hpp"

namespace keras::metrics {

/// The class index of the largest value of each row of [n, classes] scores.
template <class T>
std::vector<int> argmax_rows(const Tensor<T>& scores) {
  if (scores.rank() != 2)
    throw ShapeError("argmax_rows: expected scores of shape (samples, classes), got " + shape_str(scores.shape()));
  const Index n = scores.dim(0), c = scores.dim(1);
  std::vector<int> r(static_cast<std::size_t>(n), 0);
  for (Index i = 0; i < n; ++i)
    for (Index k = 1; k < c; ++k)
      if (scores[i * c + k] > scores[i * c + r[i]]) r[i] = static_cast<int>(k);
  return r;
}

/// cm[t][p]: the number of samples of true class t predicted as class p.
inline std::vector<std::vector<long>> confusion_matrix(const std::vector<int>& y_true, const std::vector<int>& y_pred,
                                                       int num_classes) {
  if (y_true.size() != y_pred.size())
    throw ValueError("confusion_matrix: " + std::to_string(y_true.size()) + " true labels but " +
                     std::to_string(y_pred.size()) + " predictions");
  std::vector<std::vector<long>> cm(static_cast<std::size_t>(num_classes),
                                    std::vector<long>(static_cast<std::size_t>(num_classes), 0));
  for (std::size_t i = 0; i < y_true.size(); ++i) {
    if (y_true[i] < 0 || y_true[i] >= num_classes || y_pred[i] < 0 || y_pred[i] >= num_classes)
      throw ValueError("confusion_matrix: label " + std::to_string(y_true[i]) + " / prediction " +
                       std::to_string(y_pred[i]) + " of sample " + std::to_string(i) + " is not a class index in [0, " +
                       std::to_string(num_classes) + ")");
    cm[static_cast<std::size_t>(y_true[i])][static_cast<std::size_t>(y_pred[i])]++;
  }
  return cm;
}

/// Per-class precision, recall, F1 and support of a confusion matrix, with accuracy, macro and
/// support-weighted averages (scikit-learn's definitions; 0 where a denominator is 0).
struct ClassificationReport {
  struct Row {
    std::string name;
    double precision = 0, recall = 0, f1 = 0;
    long support = 0;
  };
  std::vector<Row> classes;
  double accuracy = 0;
  Row macro, weighted;
  long total = 0;

  /// The table scikit-learn's classification_report prints.
  std::string str() const {
    std::size_t w = 12;
    for (auto& r : classes) w = std::max(w, r.name.size());
    std::string out;
    char buf[256];
    std::snprintf(buf, sizeof buf, "%*s %9s %9s %9s %9s\n\n", static_cast<int>(w), "", "precision", "recall",
                  "f1-score", "support");
    out += buf;
    auto row = [&](const Row& r) {
      std::snprintf(buf, sizeof buf, "%*s %9.4f %9.4f %9.4f %9ld\n", static_cast<int>(w), r.name.c_str(), r.precision,
                    r.recall, r.f1, r.support);
      out += buf;
    };
    for (auto& r : classes) row(r);
    std::snprintf(buf, sizeof buf, "\n%*s %9s %9s %9.4f %9ld\n", static_cast<int>(w), "accuracy", "", "", accuracy,
                  total);
    out += buf;
    row(macro);
    row(weighted);
    return out;
  }
};

inline ClassificationReport classification_report(const std::vector<std::vector<long>>& cm,
                                                  const std::vector<std::string>& class_names = {}) {
  const std::size_t k = cm.size();
  ClassificationReport rep;
  long correct = 0;
  for (std::size_t c = 0; c < k; ++c) {
    if (cm[c].size() != k) throw ShapeError("classification_report: the confusion matrix must be square");
    long tp = cm[c][c], predicted = 0, actual = 0;
    for (std::size_t j = 0; j < k; ++j) predicted += cm[j][c], actual += cm[c][j];
    ClassificationReport::Row r;
    r.name = c < class_names.size() ? class_names[c] : std::to_string(c);
    r.precision = predicted ? double(tp) / double(predicted) : 0.0;
    r.recall = actual ? double(tp) / double(actual) : 0.0;
    r.f1 = r.precision + r.recall > 0 ? 2 * r.precision * r.recall / (r.precision + r.recall) : 0.0;
    r.support = actual;
    rep.classes.push_back(r);
    correct += tp;
    rep.total += actual;
  }
  rep.accuracy = rep.total ? double(correct) / double(rep.total) : 0.0;
  rep.macro.name = "macro avg";
  rep.weighted.name = "weighted avg";
  for (auto& r : rep.classes) {
    rep.macro.precision += r.precision / double(k);
    rep.macro.recall += r.recall / double(k);
    rep.macro.f1 += r.f1 / double(k);
    if (rep.total) {
      const double wgt = double(r.support) / double(rep.total);
      rep.weighted.precision += r.precision * wgt;
      rep.weighted.recall += r.recall * wgt;
      rep.weighted.f1 += r.f1 * wgt;
    }
  }
  rep.macro.support = rep.weighted.support = rep.total;
  return rep;
}

}  // namespace keras::metrics
