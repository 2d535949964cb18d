// Renders a template file with a JSON context through @huggingface/jinja (the reference)
// and prints the result: node jinja_ref.mjs TEMPLATE CONTEXT.json
import fs from 'node:fs';
import { Template } from '@huggingface/jinja';
const [tmplPath, ctxPath] = process.argv.slice(2);
try {
  const out = new Template(fs.readFileSync(tmplPath, 'utf8')).render(JSON.parse(fs.readFileSync(ctxPath, 'utf8')));
  process.stdout.write(out);
} catch (e) {
  process.stderr.write('error: ' + e.message + '\n');
  process.exit(1);
}
