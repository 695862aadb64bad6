// Bearer-token authentication: the tokens a server accepts, each standing for
// a principal (who owns the sessions it creates). Tokens never reach logs or
// error messages; principals do.
#ifndef COLDCOMPRESS_SERVER_AUTH_H_
#define COLDCOMPRESS_SERVER_AUTH_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace coldcompress {

class Authenticator {
 public:
  // Tokens from `file` (when not empty) and from `env_value` (the value of
  // $COLDCOMPRESS_AUTH_TOKENS; nullptr when unset). One entry per line in the
  // file, comma-separated in the variable: `NAME:TOKEN` (the principal NAME)
  // or a bare `TOKEN` (the principal "token-N", N counting from 1). Blank
  // lines and lines starting with '#' are skipped. INVALID_ARGUMENT for an
  // unreadable file, a token shorter than 16 characters or with whitespace,
  // or a duplicate token or name. No tokens at all: authentication is off.
  static absl::StatusOr<std::unique_ptr<Authenticator>> Load(
      const std::string& file, const char* env_value);

  bool enabled() const { return !entries_.empty(); }
  size_t size() const { return entries_.size(); }

  // The principal of a request whose `authorization` metadata is `header`
  // (empty when absent): "anonymous" when authentication is off; else
  // UNAUTHENTICATED unless it is "Bearer <a known token>". Compares in time
  // independent of where a wrong token differs.
  absl::StatusOr<std::string> Principal(std::string_view header) const;

 private:
  struct Entry {
    std::string principal;
    std::string token;
  };
  std::vector<Entry> entries_;
};

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_AUTH_H_
