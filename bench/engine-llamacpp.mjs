// engine-llamacpp.mjs — llama.cpp's side of bench/engine: loads a GGUF through
// node-llama-cpp (prebuilt llama.cpp, CPU only) and times a prefill of N_PROMPT tokens
// and N_GEN greedy decode steps, as bench/engine does for switchyard's engine.
// Prints one JSON line: {"prefill_tps":..,"decode_tps":..,"rss_mib":..}.
//
//   node bench/engine-llamacpp.mjs MODEL.gguf THREADS [N_PROMPT=64] [N_GEN=32] [REPS=3]
//
// Each figure is the best of REPS runs on a fresh context sequence (as bench/engine does
// for its own engine: on a shared machine the least disturbed run).
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

const [modelPath, threadsArg, promptArg, genArg, repsArg] = process.argv.slice(2);
if (!modelPath) {
    console.error("usage: node engine-llamacpp.mjs MODEL.gguf THREADS [N_PROMPT] [N_GEN] [REPS]");
    process.exit(2);
}
const threads = Number(threadsArg ?? 1);
const nPrompt = Number(promptArg ?? 64);
const nGen = Number(genArg ?? 32);
const reps = Number(repsArg ?? 3);

const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath, gpuLayers: 0, useMmap: true });
const nVocab = 512; // ids below 512 exist in every model benchmarked (stories260K has 512)
const ctx = await model.createContext({
    contextSize: nPrompt + nGen + 16, batchSize: nPrompt, threads, sequences: 1,
});

// A fixed pseudo-random prompt of ordinary token ids (speed does not depend on them).
const prompt = [];
let s = 12345;
for (let i = 0; i < nPrompt; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    prompt.push(3 + (s % (nVocab - 3)));
}

const best = (a) => Math.max(...a);
const prefill = [], decode = [];
for (let r = 0; r < reps; r++) {
    const seq = ctx.getSequence();
    let t0 = process.hrtime.bigint();
    await seq.evaluateWithoutGeneratingNewTokens(prompt);
    let t1 = process.hrtime.bigint();
    prefill.push(nPrompt / (Number(t1 - t0) / 1e9));
    // decode: one token per step, greedy
    let n = 0;
    t0 = process.hrtime.bigint();
    for await (const tok of seq.evaluate([prompt[nPrompt - 1]], { temperature: 0 })) {
        void tok;
        if (++n >= nGen) break;
    }
    t1 = process.hrtime.bigint();
    decode.push(nGen / (Number(t1 - t0) / 1e9));
    seq.dispose();
}
const rss = process.resourceUsage().maxRSS / 1024;
console.log(JSON.stringify({ prefill_tps: best(prefill), decode_tps: best(decode), rss_mib: rss }));
await ctx.dispose();
await model.dispose();
process.exit(0);
