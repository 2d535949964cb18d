// llamacpp-logits.mjs — llama.cpp's side of the architecture comparison
// (tests/blackbox/arch.t): evaluates a fixed token sequence through node-llama-cpp
// (prebuilt llama.cpp, CPU, one thread, F32 KV cache, no flash attention) and prints
// the last position's log-probabilities over the whole vocabulary and N_GEN greedy
// tokens.
//
//   node bench/llamacpp-logits.mjs MODEL.gguf N_CTX N_GEN ID [ID ...]
//   node bench/llamacpp-logits.mjs --jobs JOBS.json
//
// Prints one JSON line per model: {"model":..,"n_vocab":V,"logprobs":[...],
// "greedy":[...]}. JOBS.json is a list of {"model","n_ctx","n_gen","ids"}, run in one
// process (llama.cpp's backends load once). node-llama-cpp hands out probabilities,
// not raw logits: under the greedy sampler they are the softmax of the raw logits in
// float32, so log p = logit - logsumexp(logits), the logits up to one constant; the
// comparison centres both sides (subtracts the mean), which removes that constant.
// Greedy decoding goes on through end-of-generation tokens (yieldEogToken), as the
// comparison's own decoding does.
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

import fs from "node:fs";

const args = process.argv.slice(2);
let jobs;
if (args[0] === "--jobs" && args[1]) {
    jobs = JSON.parse(fs.readFileSync(args[1], "utf8"));
} else if (args.length >= 4) {
    const [model, nCtx, nGen, ...ids] = args;
    jobs = [{ model, n_ctx: Number(nCtx), n_gen: Number(nGen), ids: ids.map(Number) }];
} else {
    console.error("usage: node llamacpp-logits.mjs MODEL.gguf N_CTX N_GEN ID [ID ...] | --jobs JOBS.json");
    process.exit(2);
}

const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
for (const job of jobs) {
    const model = await llama.loadModel({ modelPath: job.model, gpuLayers: 0, useMmap: true });
    const ctx = await model.createContext({
        contextSize: job.n_ctx, batchSize: job.ids.length, threads: 1, sequences: 1,
        flashAttention: false,
        experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32",
    });
    const seq = ctx.getSequence();
    const greedy = [];
    let logprobs = null, nVocab = 0;
    const it = seq.evaluateWithMetadata(job.ids, { probabilities: true },
        { temperature: 0, yieldEogToken: true });
    for await (const out of it) {
        if (!logprobs) { /* the whole vocabulary, sorted by probability */
            nVocab = out.probabilities.size;
            logprobs = new Array(nVocab).fill(-Infinity);
            for (const [tok, p] of out.probabilities) logprobs[tok] = Math.log(p);
        }
        greedy.push(out.token);
        if (greedy.length >= job.n_gen) break;
    }
    console.log(JSON.stringify({ model: job.model, n_vocab: nVocab, logprobs, greedy }));
    await ctx.dispose();
    await model.dispose();
}
process.exit(0);
