#!/usr/bin/env bash
# Installs every build, run and test dependency of ColdCompress C++ from Debian's packages.
# Idempotent: packages already present are skipped. Needs root (or sudo).
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev                      # LibTorch (CPU): tensors and the model runtime
  libopenblas0-pthread              # fast BLAS for LibTorch's matrix products (else ~15x slower)
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler  # gRPC + protobuf
  libabsl-dev                       # absl::Status / StatusOr, strings
  libspdlog-dev                     # logging
  libyaml-cpp-dev                   # YAML configs and presets
  libsentencepiece-dev sentencepiece  # SentencePiece tokenizer (+ spm_train for test fixtures)
  prometheus-cpp-dev                # metrics
  libgtest-dev libgmock-dev         # tests
  nlohmann-json3-dev                # JSON (safetensors headers, config.json)
  libcli11-dev                      # command-line flags
  libcpp-httplib-dev                # the HTTP side: /metrics, /healthz, /readyz
  prometheus docker-compose         # tests: a real Prometheus; compose file validation
  python3-yaml                      # tests: Kubernetes manifest validation
  libpcre2-dev                      # pre-tokenizer regexes of tokenizer.json (\p{L}, lookahead)
  libutf8proc-dev                   # Unicode NFC normalization (Qwen2 tokenizers)
  libbenchmark-dev                  # Google Benchmark: tokenizer throughput
  python3-torch python3-numpy       # independent reference implementation used by tests only
)
# Tests run the reference JavaScript tokenizers (npm registry) with Node.js;
# use the machine's Node.js when it has one, else Debian's.
if ! command -v npm >/dev/null 2>&1; then PACKAGES+=(nodejs npm); fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install_deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
