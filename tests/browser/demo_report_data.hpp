// Made-up data for a small flowers report (tests/test_report.cpp, tests/browser/make_demo_report.cpp):
// a 6-epoch history with a fine-tuning stage, a 5-class confusion matrix and 8 generated photos
// (gradients and discs, no files), 2 of them misclassified.
#pragma once
#include <cmath>

#include "../../examples/flowers_transfer_learning/report.hpp"

namespace flowers_report {

inline ReportData demo_report_data() {
  ReportData d;
  d.title = "Demo report (synthetic data)";
  d.class_names = {"daisy", "dandelion", "roses", "sunflowers", "tulips"};
  d.history["loss"] = {1.20, 0.54, 0.43, 0.36, 0.31, 0.27};
  d.history["val_loss"] = {0.60, 0.45, 0.41, 0.38, 0.35, 0.34};
  d.history["accuracy"] = {0.55, 0.81, 0.84, 0.87, 0.90, 0.92};
  d.history["val_accuracy"] = {0.79, 0.84, 0.86, 0.875, 0.89, 0.90};
  d.fine_tune_epoch = 4;
  d.confusion = {{100, 3, 1, 2, 1}, {2, 140, 0, 5, 1}, {1, 0, 80, 1, 9}, {0, 4, 1, 110, 2}, {1, 1, 8, 2, 120}};
  for (int k = 0; k < 8; ++k) {
    Photo p;
    p.width = 64;
    p.height = 48;
    p.rgb.resize(static_cast<std::size_t>(p.width * p.height * 3));
    for (int y = 0; y < p.height; ++y)
      for (int x = 0; x < p.width; ++x) {
        const double r = std::hypot(x - 32.0, y - 24.0);
        auto* px = &p.rgb[static_cast<std::size_t>((y * p.width + x) * 3)];
        const bool disc = r < 10 + 2 * k;
        px[0] = static_cast<std::uint8_t>(disc ? 230 : 40 + 20 * k);
        px[1] = static_cast<std::uint8_t>(disc ? 200 - 20 * k : 120 + y * 2);
        px[2] = static_cast<std::uint8_t>(disc ? 40 : 60 + x);
      }
    p.true_label = k % 5;
    p.predicted_label = (k == 2 || k == 6) ? (k + 1) % 5 : k % 5;
    p.confidence = 0.5 + 0.05 * k;
    p.file = "photo_" + std::to_string(k) + ".jpg";
    d.photos.push_back(std::move(p));
  }
  d.facts = {{"Model", "none (synthetic data)"}, {"Validation accuracy", "0.9000"}};
  return d;
}

}  // namespace flowers_report
