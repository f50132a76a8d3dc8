// report.hpp: the flowers example's self-contained HTML report (one file, no external assets).
//
//   training curves   inline SVG, loss and accuracy, train vs validation   (#curves, #loss-chart, #accuracy-chart)
//   confusion matrix  an HTML table, rows = true class, columns = predicted (#confusion-matrix)
//   photo grid        validation photos with their predicted label, wrong ones in red (#photo-grid)
//
// Photos are embedded as base64 JPEG (stb_image_write to memory). The writer depends only on the
// standard library and stb, so a test can render a report from made-up data (tests/test_report.cpp).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

// stb_image_write with internal linkage, like kerascpp's stb_image (data/stb.hpp).
#ifndef FLOWERS_REPORT_STB_WRITE_INCLUDED
#define FLOWERS_REPORT_STB_WRITE_INCLUDED
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#endif
#include <stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
#undef STB_IMAGE_WRITE_IMPLEMENTATION
#endif

namespace flowers_report {

/// One photo of the grid: 8-bit RGB pixels (row-major HWC) and the labels.
struct Photo {
  std::vector<std::uint8_t> rgb;
  int width = 0, height = 0;
  int true_label = 0, predicted_label = 0;
  double confidence = 0;  ///< probability of the predicted class
  std::string file;       ///< shown as the tooltip (optional)
};

/// Everything the report shows.
struct ReportData {
  std::string title = "Flowers: transfer learning with MobileNetV2";
  std::vector<std::string> class_names;
  /// Per-epoch values as in history.csv: "loss", "accuracy", "val_loss", "val_accuracy".
  std::map<std::string, std::vector<double>> history;
  /// Epoch index (0-based) where a fine-tuning stage starts; -1: none.
  int fine_tune_epoch = -1;
  /// confusion[true][predicted] counts on the validation set.
  std::vector<std::vector<long>> confusion;
  std::vector<Photo> photos;
  /// A few "key: value" facts shown at the top (model, data, timings, ...).
  std::vector<std::pair<std::string, std::string>> facts;
};

// ---- encoding helpers ----------------------------------------------------------------------------
inline std::string base64(const unsigned char* p, std::size_t n) {
  static const char* tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < n; i += 3) {
    std::uint32_t v = (std::uint32_t(p[i]) << 16) | (std::uint32_t(p[i + 1]) << 8) | p[i + 2];
    out += tbl[v >> 18];
    out += tbl[(v >> 12) & 63];
    out += tbl[(v >> 6) & 63];
    out += tbl[v & 63];
  }
  if (i < n) {
    std::uint32_t v = std::uint32_t(p[i]) << 16;
    if (i + 1 < n) v |= std::uint32_t(p[i + 1]) << 8;
    out += tbl[v >> 18];
    out += tbl[(v >> 12) & 63];
    out += i + 1 < n ? tbl[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

/// JPEG bytes of an 8-bit RGB image (stb_image_write, in memory).
inline std::vector<unsigned char> encode_jpeg(const std::uint8_t* rgb, int width, int height, int quality = 85) {
  std::vector<unsigned char> out;
  auto sink = [](void* ctx, void* data, int size) {
    auto* v = static_cast<std::vector<unsigned char>*>(ctx);
    auto* b = static_cast<unsigned char*>(data);
    if (size > 0)
      v->insert(v->end(), b, b + static_cast<std::size_t>(size));  // (size > 0: g++ 12's -Wstringop-overflow)
  };
  if (!stbi_write_jpg_to_func(sink, &out, width, height, 3, rgb, quality))
    throw std::runtime_error("report: JPEG encoding failed");
  return out;
}

inline std::string html_escape(const std::string& s) {
  std::string r;
  for (char c : s) {
    switch (c) {
      case '&':
        r += "&amp;";
        break;
      case '<':
        r += "&lt;";
        break;
      case '>':
        r += "&gt;";
        break;
      case '"':
        r += "&quot;";
        break;
      case '\'':
        r += "&#39;";
        break;
      default:
        r += c;
    }
  }
  return r;
}

inline std::string fmt(double v, int digits = 4) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", digits, v);
  return b;
}

// ---- SVG line chart ------------------------------------------------------------------------------
struct Series {
  std::string name, css_class, color;
  std::vector<double> values;
};

/// A line chart of per-epoch values (x = epoch 1..n), with axes, grid, ticks and a legend.
inline std::string svg_line_chart(const std::string& id, const std::string& title, const std::vector<Series>& series,
                                  int fine_tune_epoch = -1, bool unit_range = false) {
  const double W = 520, H = 330, L = 56, R = 16, Tm = 50, B = 44;
  std::size_t n = 0;
  double lo = INFINITY, hi = -INFINITY;
  for (auto& s : series) {
    n = std::max(n, s.values.size());
    for (double v : s.values)
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  }
  if (!std::isfinite(lo)) lo = 0, hi = 1;
  if (unit_range) lo = std::min(lo, 1.0), hi = 1.0;
  if (hi - lo < 1e-9) hi = lo + 1;
  // "nice" ticks: a step of 1, 2 or 5 times a power of ten, about 5 intervals
  double raw = (hi - lo) / 5, mag = std::pow(10.0, std::floor(std::log10(raw)));
  double tick = raw / mag < 1.5 ? mag : raw / mag < 3.5 ? 2 * mag : raw / mag < 7.5 ? 5 * mag : 10 * mag;
  lo = std::max(0.0, std::floor(lo / tick) * tick);
  hi = std::ceil(hi / tick - 1e-9) * tick;
  if (unit_range) hi = std::min(hi, 1.0);
  const int decimals = std::max(0, static_cast<int>(-std::floor(std::log10(tick) + 1e-9)));
  auto X = [&](double e) { return L + (n <= 1 ? 0.5 : (e - 1) / double(n - 1)) * (W - L - R); };
  auto Y = [&](double v) { return Tm + (hi - v) / (hi - lo) * (H - Tm - B); };
  std::ostringstream o;
  o << "<svg id=\"" << id << "\" class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\""
    << H << "\" viewBox=\"0 0 " << W << " " << H << "\" role=\"img\" aria-label=\"" << html_escape(title) << "\">\n";
  o << "<text x=\"" << W / 2 << "\" y=\"20\" text-anchor=\"middle\" class=\"chart-title\">" << html_escape(title)
    << "</text>\n";
  // horizontal grid + y ticks
  for (double v = lo; v <= hi + tick * 1e-6; v += tick) {
    double y = Y(v);
    o << "<line class=\"grid\" x1=\"" << L << "\" x2=\"" << W - R << "\" y1=\"" << fmt(y, 1) << "\" y2=\"" << fmt(y, 1)
      << "\"/>"
      << "<text class=\"tick\" x=\"" << L - 6 << "\" y=\"" << fmt(y + 4, 1) << "\" text-anchor=\"end\">"
      << fmt(v, decimals) << "</text>\n";
  }
  // x ticks (epochs)
  std::size_t step = std::max<std::size_t>(1, (n + 9) / 10);
  for (std::size_t e = 1; e <= n; e += step)
    o << "<text class=\"tick\" x=\"" << fmt(X(double(e)), 1) << "\" y=\"" << H - B + 16 << "\" text-anchor=\"middle\">"
      << e << "</text>";
  o << "\n<line class=\"axis\" x1=\"" << L << "\" x2=\"" << L << "\" y1=\"" << Tm << "\" y2=\"" << H - B << "\"/>"
    << "<line class=\"axis\" x1=\"" << L << "\" x2=\"" << W - R << "\" y1=\"" << H - B << "\" y2=\"" << H - B
    << "\"/>\n";
  o << "<text class=\"axis-label\" x=\"" << (L + W - R) / 2 << "\" y=\"" << H - 8
    << "\" text-anchor=\"middle\">epoch</text>\n";
  if (fine_tune_epoch > 0 && static_cast<std::size_t>(fine_tune_epoch) < n) {
    double x = (X(double(fine_tune_epoch)) + X(double(fine_tune_epoch + 1))) / 2;
    o << "<line class=\"fine-tune-marker\" x1=\"" << fmt(x, 1) << "\" x2=\"" << fmt(x, 1) << "\" y1=\"" << Tm
      << "\" y2=\"" << H - B << "\"/><text class=\"tick\" x=\"" << fmt(x + 4, 1) << "\" y=\"" << Tm + 12
      << "\">fine-tuning</text>\n";
  }
  // series
  int li = 0;
  for (auto& s : series) {
    if (s.values.empty()) continue;
    o << "<polyline class=\"series " << s.css_class << "\" fill=\"none\" stroke=\"" << s.color
      << "\" stroke-width=\"2\" points=\"";
    for (std::size_t i = 0; i < s.values.size(); ++i)
      o << fmt(X(double(i + 1)), 1) << "," << fmt(Y(s.values[i]), 1) << " ";
    o << "\"/>\n";
    for (std::size_t i = 0; i < s.values.size(); ++i)
      o << "<circle class=\"point " << s.css_class << "\" cx=\"" << fmt(X(double(i + 1)), 1) << "\" cy=\""
        << fmt(Y(s.values[i]), 1) << "\" r=\"3\" fill=\"" << s.color << "\"><title>" << html_escape(s.name) << " epoch "
        << i + 1 << ": " << fmt(s.values[i]) << "</title></circle>";
    const double ly = 36, lx = L + 180.0 * li++;  // legend in one row under the title
    o << "\n<g class=\"legend\"><line x1=\"" << lx << "\" x2=\"" << lx + 20 << "\" y1=\"" << ly << "\" y2=\"" << ly
      << "\" stroke=\"" << s.color << "\" stroke-width=\"3\"/><text x=\"" << lx + 26 << "\" y=\"" << ly + 4 << "\">"
      << html_escape(s.name) << "</text></g>\n";
  }
  o << "</svg>\n";
  return o.str();
}

// ---- the page ------------------------------------------------------------------------------------
inline std::string render_html(const ReportData& d) {
  auto hist = [&](const char* k) {
    auto it = d.history.find(k);
    return it == d.history.end() ? std::vector<double>{} : it->second;
  };
  auto cls = [&](int c) {
    return c >= 0 && c < static_cast<int>(d.class_names.size()) ? d.class_names[c] : std::to_string(c);
  };
  std::ostringstream o;
  o << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" << html_escape(d.title)
    << "</title>\n<style>\n"
    << "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px;color:#222;background:#fff}\n"
    << "h1{font-size:22px;margin:0 0 8px}h2{font-size:18px;margin:28px 0 10px;border-bottom:1px solid "
       "#ddd;padding-bottom:4px}\n"
    << "#facts{border-collapse:collapse;font-size:14px}#facts td{padding:2px 12px 2px 0;vertical-align:top}#facts "
       "td:first-child{color:#666}\n"
    << "#curves{display:flex;flex-wrap:wrap;gap:16px}.chart{background:#fafafa;border:1px solid "
       "#e4e4e4;border-radius:6px}\n"
    << ".chart-title{font-size:15px;font-weight:600}.tick,.legend text,.axis-label{font-size:12px;fill:#444}\n"
    << ".grid{stroke:#e6e6e6;stroke-width:1}.axis{stroke:#888;stroke-width:1}.fine-tune-marker{stroke:#999;stroke-"
       "dasharray:4 3}\n"
    << "#confusion-matrix{border-collapse:collapse;font-size:14px}#confusion-matrix th,#confusion-matrix td{border:1px "
       "solid #ccc;padding:6px 10px;text-align:center}\n"
    << "#confusion-matrix th.corner{font-weight:normal;color:#666;font-size:12px}\n"
    << "#photo-grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px}\n"
    << ".photo{margin:0;border:3px solid "
       "#3a3;border-radius:6px;overflow:hidden;background:#f5f5f5}.photo.wrong{border-color:#d22}\n"
    << ".photo img{width:100%;display:block;aspect-ratio:1/1;object-fit:cover}.photo "
       "figcaption{font-size:13px;padding:4px 6px}\n"
    << ".photo.wrong figcaption{color:#d22;font-weight:600}.photo.correct figcaption{color:#222}\n"
    << "</style>\n</head>\n<body>\n<h1>" << html_escape(d.title) << "</h1>\n";
  if (!d.facts.empty()) {
    o << "<table id=\"facts\">\n";
    for (auto& [k, v] : d.facts) o << "<tr><td>" << html_escape(k) << "</td><td>" << html_escape(v) << "</td></tr>\n";
    o << "</table>\n";
  }

  o << "<h2>Training curves</h2>\n<div id=\"curves\">\n";
  o << svg_line_chart(
      "loss-chart", "Loss",
      {{"train loss", "train", "#1f77b4", hist("loss")}, {"validation loss", "val", "#ff7f0e", hist("val_loss")}},
      d.fine_tune_epoch);
  o << svg_line_chart("accuracy-chart", "Accuracy",
                      {{"train accuracy", "train", "#1f77b4", hist("accuracy")},
                       {"validation accuracy", "val", "#ff7f0e", hist("val_accuracy")}},
                      d.fine_tune_epoch, true);
  o << "</div>\n";

  // confusion matrix
  const std::size_t C = d.confusion.size();
  long total = 0, correct = 0;
  for (std::size_t i = 0; i < C; ++i)
    for (std::size_t j = 0; j < d.confusion[i].size(); ++j) {
      total += d.confusion[i][j];
      if (i == j) correct += d.confusion[i][j];
    }
  o << "<h2>Confusion matrix (validation set";
  if (total) o << ", accuracy " << fmt(double(correct) / double(total)) << ", " << correct << "/" << total;
  o << ")</h2>\n<table id=\"confusion-matrix\">\n<tr><th class=\"corner\">true \\ predicted</th>";
  for (std::size_t j = 0; j < C; ++j) o << "<th class=\"pred-label\">" << html_escape(cls(int(j))) << "</th>";
  o << "<th class=\"corner\">recall</th></tr>\n";
  for (std::size_t i = 0; i < C; ++i) {
    long row = 0;
    for (long v : d.confusion[i]) row += v;
    o << "<tr><th class=\"true-label\">" << html_escape(cls(int(i))) << "</th>";
    for (std::size_t j = 0; j < C; ++j) {
      long v = j < d.confusion[i].size() ? d.confusion[i][j] : 0;
      double f = row ? double(v) / double(row) : 0.0;
      // diagonal: shades of green, off-diagonal: shades of red, by the fraction of the row
      int a = static_cast<int>(std::lround(255 - 150 * f));
      std::string bg = i == j ? "rgb(" + std::to_string(a) + ",255," + std::to_string(a) + ")"
                              : "rgb(255," + std::to_string(a) + "," + std::to_string(a) + ")";
      o << "<td class=\"cm-cell" << (i == j ? " diag" : "") << "\" data-true=\"" << i << "\" data-pred=\"" << j
        << "\" style=\"background:" << (v ? bg : std::string("#fff")) << "\">" << v << "</td>";
    }
    double rec = row ? double(d.confusion[i][i < d.confusion[i].size() ? i : 0]) / double(row) : 0.0;
    o << "<td class=\"recall\">" << fmt(rec, 3) << "</td></tr>\n";
  }
  o << "</table>\n";

  // photo grid
  int wrong = 0;
  for (auto& p : d.photos) wrong += p.true_label != p.predicted_label;
  o << "<h2>Validation photos with predictions (" << d.photos.size() << " shown, " << wrong
    << " wrong in red)</h2>\n<div id=\"photo-grid\">\n";
  for (auto& p : d.photos) {
    bool ok = p.true_label == p.predicted_label;
    auto jpg = p.rgb.empty() ? std::vector<unsigned char>{} : encode_jpeg(p.rgb.data(), p.width, p.height);
    o << "<figure class=\"photo " << (ok ? "correct" : "wrong") << "\""
      << (p.file.empty() ? "" : " title=\"" + html_escape(p.file) + "\"") << "><img alt=\""
      << html_escape(cls(p.true_label)) << "\" src=\"data:image/jpeg;base64," << base64(jpg.data(), jpg.size())
      << "\"><figcaption>" << html_escape(cls(p.predicted_label)) << " " << fmt(100 * p.confidence, 0) << "%";
    if (!ok) o << " (true: " << html_escape(cls(p.true_label)) << ")";
    o << "</figcaption></figure>\n";
  }
  o << "</div>\n</body>\n</html>\n";
  return o.str();
}

/// Writes render_html(d) to `path`.
inline void write_report(const std::string& path, const ReportData& d) {
  std::ofstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("report: cannot write '" + path + "'");
  f << render_html(d);
  if (!f) throw std::runtime_error("report: error writing '" + path + "'");
}

}  // namespace flowers_report
