#include "client/progress.h"

#include <unistd.h>

#include <cstdio>

#include "absl/strings/str_format.h"

namespace coldcompress::client {

Progress::Progress(std::string label, size_t total, size_t done, bool enabled)
    : label_(std::move(label)),
      total_(total),
      done_(done),
      resumed_(done),
      enabled_(enabled),
      tty_(isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {
  if (enabled_) Draw(true);
}

Progress::~Progress() { Finish(); }

std::string Progress::Line(const std::string& label, size_t done, size_t total,
                           size_t resumed, double elapsed_s, int width) {
  const double fraction = total ? static_cast<double>(done) / total : 1.0;
  const int filled = static_cast<int>(fraction * width);
  std::string bar(filled, '#');
  bar.resize(width, '.');
  const size_t ran = done - resumed;
  const double rate = elapsed_s > 0 ? ran / elapsed_s : 0;
  std::string eta = "--:--";
  if (rate > 0) {
    const auto left = static_cast<int64_t>((total - done) / rate + 0.5);
    eta = absl::StrFormat("%d:%02d", left / 60, left % 60);
  }
  return absl::StrFormat("%s [%s] %d/%d %.2f/s ETA %s", label, bar, done, total,
                         rate, eta);
}

void Progress::Draw(bool force) {
  const auto now = std::chrono::steady_clock::now();
  if (!force && !tty_ && now - last_draw_ < std::chrono::seconds(10)) return;
  if (!force && tty_ && now - last_draw_ < std::chrono::milliseconds(100))
    return;
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const std::string line = Line(label_, done_, total_, resumed_, elapsed, 30);
  std::fprintf(stderr, tty_ ? "\r%s\x1b[K" : "%s\n", line.c_str());
  std::fflush(stderr);
}

void Progress::Advance() {
  std::lock_guard lock(mu_);
  ++done_;
  if (enabled_) Draw(done_ == total_);
}

void Progress::Finish() {
  std::lock_guard lock(mu_);
  if (finished_ || !enabled_) return;
  finished_ = true;
  if (tty_) {
    std::fprintf(stderr, "\n");
  } else if (done_ != total_) {
    Draw(true);
  }
}

}  // namespace coldcompress::client
