// Writes a small flowers report from made-up data (for tests/browser/check_report.sh).
// Usage: flowers_demo_report OUTPUT.html
#include <iostream>

#include "demo_report_data.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: flowers_demo_report OUTPUT.html\n";
    return 2;
  }
  flowers_report::write_report(argv[1], flowers_report::demo_report_data());
  std::cout << "wrote " << argv[1] << "\n";
  return 0;
}
