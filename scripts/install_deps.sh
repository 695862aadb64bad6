#!/usr/bin/env bash
# Installs the dependencies of ColdCompress C++ from Debian's packages.
# Idempotent: packages already present are skipped. Needs root (or sudo).
#   scripts/install_deps.sh           everything to build, run and test (CPU LibTorch)
#   scripts/install_deps.sh --image   what the Docker image's build stage needs: no
#                                     LibTorch (it brings the official CUDA build), no test tools
set -euo pipefail

# Building and running.
PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler  # gRPC + protobuf
  libabsl-dev                       # absl::Status / StatusOr, strings
  libspdlog-dev                     # logging
  libyaml-cpp-dev                   # YAML configs and presets
  libsentencepiece-dev sentencepiece  # SentencePiece tokenizer (+ spm_train for test fixtures)
  prometheus-cpp-dev                # metrics
  libcpp-httplib-dev                # HTTP: /metrics, /healthz, /readyz; the client's Prometheus and judge calls
  nlohmann-json3-dev                # JSON (safetensors headers, config.json)
  zlib1g-dev                        # gzip: cc-train's batch files
  libcli11-dev                      # command-line flags
  libpcre2-dev                      # pre-tokenizer regexes of tokenizer.json (\p{L}, lookahead)
  libutf8proc-dev                   # Unicode NFC normalization (Qwen2 tokenizers)
  libgtest-dev libgmock-dev         # tests (also built by default)
  libbenchmark-dev                  # Google Benchmark: tokenizer throughput
)
if [ "${1:-}" != "--image" ]; then
  PACKAGES+=(
    libtorch-dev                    # LibTorch (CPU): tensors and the model runtime
    libopenblas0-pthread            # fast BLAS for LibTorch's matrix products (else ~15x slower)
    python3-torch python3-numpy     # tests: the independent reference implementation
    prometheus                      # tests: a real Prometheus scraping the server
    docker-compose                  # tests: validates deploy/docker-compose.yml
    python3-yaml                    # tests: validates the Kubernetes manifests
    librsvg2-bin                    # tests: renders the report's SVG plots to PNG
    clang-14 libclang-rt-14-dev     # tests: libFuzzer targets with ASan/UBSan (scripts/fuzz.sh)
    openssl                         # tests: certificates for the TLS and mutual-TLS cases
  )
  # Tests run the reference JavaScript tokenizers (npm registry) with Node.js;
  # use the machine's Node.js when it has one, else Debian's.
  if ! command -v npm >/dev/null 2>&1; then PACKAGES+=(nodejs npm); fi
fi

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
