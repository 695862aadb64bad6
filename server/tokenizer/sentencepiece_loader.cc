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

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define COLDCOMPRESS_SANITIZER_RUNTIME 1
#endif

// dlopen with RTLD_DEEPBIND. Under ASan and TSan the sanitizer's dlopen
// refuses that flag (google/sanitizers#611): a deep-bound library would
// resolve malloc and operator new to libc's, and memory crossing the boundary
// would meet two allocators. Our module is built with the same sanitizer and
// its first dependency is the sanitizer runtime, so its deep-bound scope
// finds the runtime's allocator first; we call libc's own dlopen, past the
// interceptor, and then check that the module's malloc is the process's.
void* OpenDeepBound(const std::string& path, std::string* error) {
  constexpr int kFlags = RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND;
#ifdef COLDCOMPRESS_SANITIZER_RUNTIME
  using DlopenFn = void* (*)(const char*, int);
  void* libc = ::dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  auto real_dlopen = libc == nullptr
                         ? nullptr
                         : reinterpret_cast<DlopenFn>(::dlsym(libc, "dlopen"));
  if (real_dlopen == nullptr) {
    *error = "cannot find libc's dlopen";
    return nullptr;
  }
  void* handle = real_dlopen(path.c_str(), kFlags);
  if (handle != nullptr &&
      ::dlsym(handle, "malloc") != ::dlsym(RTLD_DEFAULT, "malloc")) {
    *error = path +
             " binds malloc to another allocator than the sanitizer's; "
             "build it with the same -fsanitize flags";
    ::dlclose(handle);
    return nullptr;
  }
#else
  void* handle = ::dlopen(path.c_str(), kFlags);
#endif
  if (handle == nullptr) *error = "cannot open " + path + ": " + ::dlerror();
  return handle;
}

LoadFn Resolve(std::string* error) {
  static std::once_flag once;
  static LoadFn fn = nullptr;
  static std::string failure;
  std::call_once(once, [] {
    for (const std::string& path : Candidates()) {
      if (path.empty() || !std::filesystem::exists(path)) continue;
      void* handle = OpenDeepBound(path, &failure);
      if (handle == nullptr) continue;
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
