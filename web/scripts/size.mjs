// Prints what the first page load costs: every script and module preload
// that dist/index.html references, raw and gzipped (level 9). Exits 1 above
// the budget of 150 KiB of gzipped JavaScript.
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

const BUDGET = 150 * 1024;
const html = readFileSync(new URL('../dist/index.html', import.meta.url), 'utf8');
const refs = [...html.matchAll(/<(?:script[^>]*\ssrc|link[^>]*rel="modulepreload"[^>]*\shref)="([^"]+)"/g)].map((m) => m[1]);
let total = 0;
for (const ref of refs) {
  const bytes = readFileSync(new URL('../dist' + ref, import.meta.url));
  const gz = gzipSync(bytes, { level: 9 }).length;
  total += gz;
  console.log(`${ref}  ${(bytes.length / 1024).toFixed(1)} KiB, ${(gz / 1024).toFixed(1)} KiB gzipped`);
}
console.log(`first-load JavaScript: ${(total / 1024).toFixed(1)} KiB gzipped (budget ${BUDGET / 1024} KiB)`);
process.exit(total < BUDGET ? 0 : 1);
