#include "server/model/random_weights.h"

#include <ATen/ATen.h>

#include <cmath>

namespace coldcompress {

ModelWeights RandomWeights(const ModelConfig& c, uint64_t seed, double std,
                           at::TensorOptions options) {
  at::manual_seed(seed);
  const int64_t d = c.hidden_size, hd = c.head_dim;
  if (std <= 0) std = 1 / std::sqrt(static_cast<double>(d));
  const double out_std = std / std::sqrt(2.0 * c.num_layers);
  auto normal = [&](std::vector<int64_t> shape, double s) {
    return at::randn(shape, options).mul_(s);
  };
  ModelWeights w;
  w.embed = normal({c.vocab_size, d}, std);
  w.norm = at::ones({d}, options);
  w.lm_head = w.embed;
  for (int i = 0; i < c.num_layers; ++i) {
    LayerWeights l;
    l.input_norm = at::ones({d}, options);
    l.post_norm = at::ones({d}, options);
    l.wq = normal({c.num_heads * hd, d}, std);
    l.wk = normal({c.num_kv_heads * hd, d}, std);
    l.wv = normal({c.num_kv_heads * hd, d}, std);
    l.wo = normal({d, c.num_heads * hd}, out_std);
    l.w_gate = normal({c.intermediate_size, d}, std);
    l.w_up = normal({c.intermediate_size, d}, std);
    l.w_down = normal({d, c.intermediate_size}, out_std);
    w.layers.push_back(l);
  }
  return w;
}

}  // namespace coldcompress
