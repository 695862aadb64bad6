// Opens the SentencePiece module (libcc_spm.so) with its own symbol scope; see
// the comment at the top of sentencepiece.cc for why.
#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>

#include "server/tokenizer/tokenizer.h"

#ifndef COLDCOMPRESS_SPM_MODULE_BUILD_PATH
#define COLDCOMPRESS_SPM_MODULE_BUILD_PATH ""
#endif

namespace coldcompress {
namespace {

using LoadFn = Tokenizer* (*)(const char*, bool, std::string*);

constexpr char kModuleName[] = "libcc_spm.so";

// Candidate paths: $COLDCOMPRESS_SPM_MODULE, next to the executable, its
// ../lib/coldcompress/, and where the build put it.
std::vector<std::string> Candidates() {
  std::vector<std::string> paths;
  if (const char* env = std::getenv("COLDCOMPRESS_SPM_MODULE"); env && *env) {
    paths.push_back(env);
  }
  std::error_code ec;
  const std::filesystem::path exe =
      std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    paths.push_back((exe.parent_path() / kModuleName).string());
    paths.push_back(
        (exe.parent_path() / ".." / "lib" / "coldcompress" / kModuleName)
            .string());
  }
  paths.push_back(COLDCOMPRESS_SPM_MODULE_BUILD_PATH);
  return paths;
}

LoadFn Resolve(std::string* error) {
  static std::once_flag once;
  static LoadFn fn = nullptr;
  static std::string failure;
  std::call_once(once, [] {
    for (const std::string& path : Candidates()) {
      if (path.empty() || !std::filesystem::exists(path)) continue;
      void* handle =
          ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
      if (handle == nullptr) {
        failure = std::string("cannot open ") + path + ": " + ::dlerror();
        continue;
      }
      fn = reinterpret_cast<LoadFn>(
          ::dlsym(handle, "coldcompress_load_sentencepiece"));
      if (fn != nullptr) return;  // the module stays loaded for the process
      failure = path + " has no coldcompress_load_sentencepiece";
    }
    if (failure.empty()) {
      failure = std::string(kModuleName) +
                " not found (set COLDCOMPRESS_SPM_MODULE to its path)";
    }
  });
  if (fn == nullptr) *error = failure;
  return fn;
}

}  // namespace

std::unique_ptr<Tokenizer> LoadSentencePiece(const std::string& path,
                                             bool add_bos, std::string* error) {
  LoadFn fn = Resolve(error);
  if (fn == nullptr) return nullptr;
  return std::unique_ptr<Tokenizer>(fn(path.c_str(), add_bos, error));
}

}  // namespace coldcompress
