// greedy-llamacpp.mjs — llama.cpp's greedy continuation of a prompt of token ids,
// through node-llama-cpp (prebuilt llama.cpp, CPU only), for tests that compare the
// engine's greedy tokens with llama.cpp's on the same GGUF file.
// Prints one JSON line: {"tokens":[...]} (the N_GEN generated ids).
//
//   node bench/greedy-llamacpp.mjs MODEL.gguf N_GEN ID,ID,...
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

const [modelPath, genArg, idsArg] = process.argv.slice(2);
if (!modelPath || !genArg || !idsArg) {
    console.error("usage: node greedy-llamacpp.mjs MODEL.gguf N_GEN ID,ID,...");
    process.exit(2);
}
const nGen = Number(genArg);
const prompt = idsArg.split(",").map(Number);
const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath, gpuLayers: 0, useMmap: true });
const ctx = await model.createContext({
    contextSize: prompt.length + nGen + 16, batchSize: prompt.length, threads: 1, sequences: 1,
});
const seq = ctx.getSequence();
const out = [];
for await (const tok of seq.evaluate(prompt, { temperature: 0 })) {
    out.push(tok);
    if (out.length >= nGen) break;
}
console.log(JSON.stringify({ tokens: out }));
await ctx.dispose();
await model.dispose();
process.exit(0);
