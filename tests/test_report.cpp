// The flowers example's HTML report (examples/flowers_transfer_learning/report.hpp), rendered from
// made-up data: structure, embedded images, escaping. The browser check is tests/browser/check_report.sh.
#include <catch2/catch.hpp>
#include <keras/data/image.hpp>
#include <regex>

#include "browser/demo_report_data.hpp"

using namespace flowers_report;

static std::size_t count(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

TEST_CASE("base64 matches RFC 4648 test vectors", "[report]") {
  auto b = [](const std::string& s) { return base64(reinterpret_cast<const unsigned char*>(s.data()), s.size()); };
  CHECK(b("") == "");
  CHECK(b("f") == "Zg==");
  CHECK(b("fo") == "Zm8=");
  CHECK(b("foo") == "Zm9v");
  CHECK(b("foob") == "Zm9vYg==");
  CHECK(b("fooba") == "Zm9vYmE=");
  CHECK(b("foobar") == "Zm9vYmFy");
}

TEST_CASE("the report holds the curves, the confusion matrix and the photo grid", "[report]") {
  const ReportData d = demo_report_data();
  const std::string html = render_html(d);
  CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(count(html, "<svg id=\"loss-chart\"") == 1);
  CHECK(count(html, "<svg id=\"accuracy-chart\"") == 1);
  CHECK(count(html, "<polyline class=\"series train\"") == 2);
  CHECK(count(html, "<polyline class=\"series val\"") == 2);
  CHECK(count(html, "class=\"fine-tune-marker\"") == 2);
  CHECK(count(html, "<table id=\"confusion-matrix\"") == 1);
  CHECK(count(html, "class=\"cm-cell") == 25);
  CHECK(count(html, "class=\"cm-cell diag\"") == 5);
  CHECK(html.find("accuracy 0.9244, 550/595") != std::string::npos);  // diagonal / total of the made-up matrix
  CHECK(count(html, "<figure class=\"photo correct\"") == 6);
  CHECK(count(html, "<figure class=\"photo wrong\"") == 2);
  CHECK(html.find("(true: roses)") != std::string::npos);
  // self-contained: no external resources
  CHECK(html.find("http://") == html.find("http://www.w3.org/2000/svg"));
  CHECK(html.find("https://") == std::string::npos);
  CHECK(html.find("<script") == std::string::npos);
}

TEST_CASE("embedded photos are valid JPEGs of the right size", "[report]") {
  const ReportData d = demo_report_data();
  const std::string html = render_html(d);
  std::regex img("data:image/jpeg;base64,([A-Za-z0-9+/=]+)\"");
  int n = 0;
  for (std::sregex_iterator it(html.begin(), html.end(), img), end; it != end; ++it, ++n) {
    const std::string b64 = (*it)[1];
    // decode base64
    std::vector<unsigned char> bytes;
    unsigned v = 0;
    int bits = 0;
    for (char c : b64) {
      if (c == '=') break;
      const char* tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
      v = (v << 6) | static_cast<unsigned>(std::strchr(tbl, c) - tbl);
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        bytes.push_back(static_cast<unsigned char>((v >> bits) & 0xFF));
      }
    }
    auto im = keras::data::decode_image_bytes(bytes.data(), bytes.size(), 3);
    CHECK(im.width == 64);
    CHECK(im.height == 48);
    // the disc in the middle is bright red-ish, as generated (JPEG is lossy: loose bounds)
    const auto* px = &im.pixels[static_cast<std::size_t>((24 * 64 + 32) * 3)];
    CHECK(px[0] > 180);
  }
  CHECK(n == 8);
}

TEST_CASE("report text is HTML-escaped", "[report]") {
  ReportData d;
  d.title = "a <b> & \"c\"";
  d.class_names = {"<x>", "y"};
  d.confusion = {{1, 0}, {0, 1}};
  const std::string html = render_html(d);
  CHECK(html.find("a &lt;b&gt; &amp; &quot;c&quot;") != std::string::npos);
  CHECK(html.find("<x>") == std::string::npos);
  CHECK(html.find("&lt;x&gt;") != std::string::npos);
}
