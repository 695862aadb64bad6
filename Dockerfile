# syntax=docker/dockerfile:1
# The ColdCompress server and client for NVIDIA GPUs.
#   docker build -t coldcompress:latest .
# Build stage: Debian 12 with the project's own dependency script
# (scripts/install_deps.sh --image), NVIDIA's CUDA toolkit from its Debian 12
# repository, the official LibTorch CUDA build, and scripts/build.sh: the same
# scripts CI runs, so the two cannot drift.
ARG LIBTORCH_URL=https://download.pytorch.org/libtorch/cu124/libtorch-cxx11-abi-shared-with-deps-2.4.1%2Bcu124.zip
ARG CUDA_PACKAGE=cuda-toolkit-12-4

FROM debian:12 AS build
ARG LIBTORCH_URL
ARG CUDA_PACKAGE
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      ca-certificates wget unzip gnupg && rm -rf /var/lib/apt/lists/*
COPY scripts/install_deps.sh /src/scripts/install_deps.sh
RUN /src/scripts/install_deps.sh --image
RUN wget -q https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/cuda-keyring_1.1-1_all.deb \
 && dpkg -i cuda-keyring_1.1-1_all.deb && rm cuda-keyring_1.1-1_all.deb \
 && apt-get update -qq && apt-get install -y -qq --no-install-recommends "${CUDA_PACKAGE}" \
 && rm -rf /var/lib/apt/lists/*
RUN wget -q "${LIBTORCH_URL}" -O /tmp/libtorch.zip && unzip -q /tmp/libtorch.zip -d /opt \
 && rm /tmp/libtorch.zip
COPY . /src
WORKDIR /src
ENV PATH=/usr/local/cuda/bin:${PATH}
RUN BUILD_DIR=/build \
    CMAKE_ARGS="-DCMAKE_PREFIX_PATH=/opt/libtorch -DCOLDCOMPRESS_BUILD_TESTS=OFF -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc" \
    scripts/build.sh

# Runtime stage: the shared libraries of Debian's packages, LibTorch's own
# (it bundles its CUDA libraries), the binaries, the configs and the embedded
# default model (/models/default; mount a folder over /models for others). The
# GPU driver comes from the host (NVIDIA Container Toolkit).
FROM debian:12-slim AS runtime
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      libgrpc++1.51 libprotobuf32 libabsl20220623 libspdlog1.10 libyaml-cpp0.7 libsentencepiece0 \
      libprometheus-cpp-core1.0 libcpp-httplib0.11 libpcre2-8-0 libutf8proc2 libgomp1 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/libtorch/lib /opt/libtorch/lib
COPY --from=build /build/server/coldcompress-server /build/client/coldcompress \
  /build/loadtest/coldcompress-loadtest /usr/local/bin/
COPY --from=build /build/server/libcc_spm.so /usr/local/lib/coldcompress/libcc_spm.so
COPY configs /etc/coldcompress/configs
COPY models/default/config.json models/default/generation_config.json models/default/model.safetensors \
     models/default/tokenizer.model models/default/tokenizer_config.json models/default/README.md /models/default/
ENV LD_LIBRARY_PATH=/opt/libtorch/lib
RUN useradd --system --uid 10001 --no-create-home coldcompress
USER 10001
WORKDIR /etc/coldcompress
EXPOSE 50051 9400
CMD ["coldcompress-server", "--config=/etc/coldcompress/configs/server.yaml", "--model_dir=/models/default", "--device=cuda"]
