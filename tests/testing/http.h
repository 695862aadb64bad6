// A minimal HTTP/1.0 GET for tests (the server's /metrics, Prometheus's API).
#ifndef COLDCOMPRESS_TESTS_TESTING_HTTP_H_
#define COLDCOMPRESS_TESTS_TESTING_HTTP_H_

#include <string>

namespace coldcompress::testing {

struct HttpResponse {
  int status = 0;  // 0 when the connection failed
  std::string body;
};

HttpResponse HttpGet(const std::string& host, int port,
                     const std::string& path_and_query);

// Percent-encodes a query parameter value.
std::string UrlEncode(const std::string& s);

}  // namespace coldcompress::testing

#endif  // COLDCOMPRESS_TESTS_TESTING_HTTP_H_
