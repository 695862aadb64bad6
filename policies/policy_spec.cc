#include "policies/policy_spec.h"

namespace coldcompress {

bool PolicyOverlay::empty() const {
  return !strategy && !strategy_pattern && !prompt_compression &&
         !max_cache_length && !length_pattern && !global_tokens &&
         !recent_window && !history_window_size && !attn_thresholding &&
         !min_recovery_frac && !hybrid_strategies && !cache_bits &&
         !feed_long_prompts && !decode_first_token && params.empty();
}

void PolicyOverlay::ApplyTo(PolicySpec& spec) const {
  if (strategy) {
    spec.strategy = *strategy;
    // A new strategy list without compressors takes each strategy's own.
    if (!prompt_compression) spec.prompt_compression.clear();
  }
  if (strategy_pattern) spec.strategy_pattern = *strategy_pattern;
  if (prompt_compression) spec.prompt_compression = *prompt_compression;
  if (max_cache_length) spec.max_cache_length = *max_cache_length;
  if (length_pattern) spec.length_pattern = *length_pattern;
  if (global_tokens) spec.global_tokens = *global_tokens;
  if (recent_window) spec.recent_window = *recent_window;
  if (history_window_size) spec.history_window_size = *history_window_size;
  if (attn_thresholding) spec.attn_thresholding = *attn_thresholding;
  if (min_recovery_frac) spec.min_recovery_frac = *min_recovery_frac;
  if (hybrid_strategies) spec.hybrid_strategies = *hybrid_strategies;
  if (cache_bits) spec.cache_bits = *cache_bits;
  if (feed_long_prompts) spec.feed_long_prompts = *feed_long_prompts;
  if (decode_first_token) spec.decode_first_token = *decode_first_token;
  for (const auto& [k, v] : params) spec.params[k] = v;
}

}  // namespace coldcompress
