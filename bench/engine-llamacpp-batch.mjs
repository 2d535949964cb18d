// engine-llamacpp-batch.mjs — llama.cpp's side of `bench/engine --batch`: N sequences
// in one context (node-llama-cpp `sequences: N`, one getSequence() each), all greedy
// at once, so llama.cpp batches their decode steps in one llama_decode per step.
// Prints one JSON line: {"agg_tps":..,"cpu_tps":..,"tokens":..}: decode tokens per
// second summed over the sequences, counted while all N were decoding (from the last
// sequence's first token to the first sequence's last token), as bench/engine does for
// ours; cpu_tps: the same tokens per second of CPU time the process got (user +
// system, all its threads) in that window.
//
//   node bench/engine-llamacpp-batch.mjs MODEL.gguf THREADS N [N_PROMPT=16] [N_GEN=32]
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

const [modelPath, threadsArg, nArg, promptArg, genArg] = process.argv.slice(2);
if (!modelPath || !nArg) {
    console.error("usage: node engine-llamacpp-batch.mjs MODEL.gguf THREADS N [N_PROMPT] [N_GEN]");
    process.exit(2);
}
const threads = Number(threadsArg ?? 1);
const nSeq = Number(nArg);
const nPrompt = Number(promptArg ?? 16);
const nGen = Number(genArg ?? 32);

const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath, gpuLayers: 0, useMmap: true });
const ctx = await model.createContext({
    contextSize: nSeq * (nPrompt + nGen + 16), batchSize: Math.max(64, nSeq), threads,
    sequences: nSeq,
});

// Sequence i's prompt: the same pseudo-random ids bench/engine gives its sequence i.
function promptOf(i) {
    const p = [];
    let s = (12345 + 7919 * i) >>> 0;
    for (let k = 0; k < nPrompt; k++) {
        s = (Math.imul(s, 1103515245) + 12345) >>> 0;
        p.push(3 + (s % 509));
    }
    return p;
}

const times = [];
const seqs = [];
for (let i = 0; i < nSeq; i++) seqs.push(ctx.getSequence());
await Promise.all(seqs.map(async (seq, i) => {
    const t = [];
    t.cpu = [];
    times.push(t);
    for await (const tok of seq.evaluate(promptOf(i), { temperature: 0 })) {
        void tok;
        t.push(Number(process.hrtime.bigint()) / 1e9);
        const u = process.cpuUsage();
        t.cpu.push((u.user + u.system) / 1e6);
        if (t.length >= nGen) break;
    }
}));
let ta = 0, tb = Infinity, ca = 0, cb = 0;
for (const t of times) {
    if (t[0] > ta) { ta = t[0]; ca = t.cpu[0]; }
    if (t[t.length - 1] < tb) { tb = t[t.length - 1]; cb = t.cpu[t.length - 1]; }
}
let count = 0;
for (const t of times) for (const x of t) if (x > ta && x <= tb) count++;
console.log(JSON.stringify({
    agg_tps: tb > ta ? count / (tb - ta) : 0, cpu_tps: cb > ca ? count / (cb - ca) : 0, tokens: count,
}));
for (const s of seqs) s.dispose();
await ctx.dispose();
await model.dispose();
process.exit(0);
