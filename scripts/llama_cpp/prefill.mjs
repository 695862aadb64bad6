// Times llama.cpp's prefill (node-llama-cpp's prebuilt CPU build) of a
// prompt of token ids on a GGUF model: the baseline of
// scripts/prefill_vs_llama_cpp.sh.
//   node prefill.mjs MODEL.gguf TOKENS THREADS RUNS BATCH VOCAB FLASH
// FLASH: on or off (llama.cpp's flash attention). Prints one line per run:
// "llama.cpp prefill TOKENS tokens: S s". The token ids are
// cc-prefill-bench's: 3 + (i * 7919) % (VOCAB - 3).
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

const [modelPath, ...rest] = process.argv.slice(2);
const numbers = rest.slice(0, 5), flash = rest[5];
if (!modelPath || numbers.length !== 5 || numbers.some((x) => !(Number(x) > 0)) ||
    !["on", "off"].includes(flash)) {
  console.error("usage: node prefill.mjs MODEL.gguf TOKENS THREADS RUNS BATCH VOCAB on|off");
  process.exit(2);
}
const [n, threads, runs, batch, vocab] = numbers.map(Number);

const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath, gpuLayers: 0});
const tokens = Array.from({length: n}, (_, i) => 3 + ((i * 7919) % (vocab - 3)));
const context = await model.createContext({
  contextSize: n + 16, batchSize: batch, threads, sequences: 1, flashAttention: flash === "on",
});
for (let r = 0; r < runs; ++r) {
  const sequence = context.getSequence();
  const t0 = performance.now();
  await sequence.evaluateWithoutGeneratingNewTokens(tokens);
  const seconds = (performance.now() - t0) / 1000;
  console.log(`llama.cpp prefill ${n} tokens: ${seconds.toFixed(3)} s ` +
              `(batch ${batch}, ${threads} threads, flash attention ${flash})`);
  sequence.dispose();
}
await context.dispose();
await model.dispose();
