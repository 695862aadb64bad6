// A progress bar on stderr: examples done, rate and ETA. On a terminal it
// redraws one line; otherwise it prints a line at most every 10 seconds.
#ifndef COLDCOMPRESS_CLIENT_PROGRESS_H_
#define COLDCOMPRESS_CLIENT_PROGRESS_H_

#include <chrono>
#include <mutex>
#include <string>

namespace coldcompress::client {

class Progress {
 public:
  // `done` of `total` are finished before the run starts (resumed).
  Progress(std::string label, size_t total, size_t done, bool enabled);
  ~Progress();

  // One more finished (thread-safe).
  void Advance();
  // Prints the final line.
  void Finish();
  // Whether a bar is being redrawn in place (a line printed meanwhile must
  // start on a fresh line).
  bool on_screen() const { return enabled_ && tty_; }

  // "[#####.....] 12/50 3.1/s ETA 0:12"; rate and ETA count only this run.
  static std::string Line(const std::string& label, size_t done, size_t total,
                          size_t resumed, double elapsed_s, int width);

 private:
  void Draw(bool force);

  std::string label_;
  size_t total_, done_, resumed_;
  bool enabled_, tty_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
  std::mutex mu_;
};

}  // namespace coldcompress::client

#endif  // COLDCOMPRESS_CLIENT_PROGRESS_H_
