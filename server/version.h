#ifndef COLDCOMPRESS_SERVER_VERSION_H_
#define COLDCOMPRESS_SERVER_VERSION_H_

namespace coldcompress {

inline constexpr const char kVersion[] = "0.1.0";

}  // namespace coldcompress

#endif  // COLDCOMPRESS_SERVER_VERSION_H_
