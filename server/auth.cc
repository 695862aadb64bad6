#include "server/auth.h"

#include <fstream>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace coldcompress {
namespace {

constexpr size_t kMinTokenLength = 16;

// Equal length and bytes, in time that depends only on the lengths.
bool SameToken(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Authenticator>> Authenticator::Load(
    const std::string& file, const char* env_value) {
  // (where, line) pairs; `where` names the source in errors, never the token.
  std::vector<std::pair<std::string, std::string>> lines;
  if (!file.empty()) {
    std::ifstream in(file);
    if (!in) {
      return absl::InvalidArgumentError(
          absl::StrCat("auth_tokens_file: cannot read ", file));
    }
    std::string line;
    for (int n = 1; std::getline(in, line); ++n)
      lines.emplace_back(absl::StrCat(file, ":", n), line);
  }
  if (env_value != nullptr) {
    int n = 1;
    for (absl::string_view part : absl::StrSplit(env_value, ',')) {
      lines.emplace_back(absl::StrCat("COLDCOMPRESS_AUTH_TOKENS entry ", n++),
                         std::string(part));
    }
  }
  auto auth = std::unique_ptr<Authenticator>(new Authenticator());
  std::set<std::string> names, tokens;
  for (const auto& [where, raw] : lines) {
    const std::string line(absl::StripAsciiWhitespace(raw));
    if (line.empty() || line[0] == '#') continue;
    Entry e;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) {
      e.principal = absl::StrCat("token-", auth->entries_.size() + 1);
      e.token = line;
    } else {
      e.principal = line.substr(0, colon);
      e.token = line.substr(colon + 1);
      if (e.principal.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": the principal name before ':' is empty"));
      }
    }
    if (e.token.size() < kMinTokenLength) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": a token needs at least ", kMinTokenLength, " characters"));
    }
    for (char c : e.token) {
      if (absl::ascii_isspace(static_cast<unsigned char>(c)) ||
          !absl::ascii_isprint(static_cast<unsigned char>(c))) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": a token must be printable ASCII without spaces"));
      }
    }
    if (!names.insert(e.principal).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": principal \"", e.principal, "\" repeats"));
    }
    if (!tokens.insert(e.token).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": the same token is listed twice"));
    }
    auth->entries_.push_back(std::move(e));
  }
  return auth;
}

absl::StatusOr<std::string> Authenticator::Principal(
    std::string_view header) const {
  if (!enabled()) return std::string("anonymous");
  constexpr std::string_view kBearer = "Bearer ";
  if (header.empty()) {
    return absl::UnauthenticatedError(
        "missing authorization metadata: send \"authorization: Bearer "
        "<token>\"");
  }
  if (header.substr(0, kBearer.size()) != kBearer) {
    return absl::UnauthenticatedError(
        "the authorization metadata is not \"Bearer <token>\"");
  }
  const std::string_view token = header.substr(kBearer.size());
  const Entry* found = nullptr;
  for (const Entry& e : entries_) {  // every entry: no early exit
    if (SameToken(token, e.token)) found = &e;
  }
  if (found == nullptr)
    return absl::UnauthenticatedError("the bearer token is not valid");
  return found->principal;
}

}  // namespace coldcompress
