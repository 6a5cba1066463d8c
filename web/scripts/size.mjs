// Prints the gzipped size of the console's JavaScript: the shell (what index.html loads before any
// route: the entry script and the chunks it preloads) and every lazily loaded chunk.
// Fails when the shell is over the budget. Run after `npm run build`.
import { readFile, readdir } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';

const SHELL_BUDGET_BYTES = 300 * 1024;
const dist = new URL('../dist/', import.meta.url);

const html = await readFile(new URL('index.html', dist), 'utf8').catch(() => {
  console.error('dist/index.html is missing: run `npm run build` first');
  process.exit(1);
});
const shellFiles = new Set(
  [...html.matchAll(/<(?:script[^>]*\ssrc|link[^>]*rel="modulepreload"[^>]*\shref)="\/?([^"]+\.js)"/g)].map(
    (match) => match[1],
  ),
);
if (shellFiles.size === 0) {
  console.error('no script found in dist/index.html');
  process.exit(1);
}

const gzipped = async (path) => gzipSync(await readFile(new URL(path, dist)), { level: 9 }).length;
const kib = (bytes) => `${(bytes / 1024).toFixed(1)} KiB`;

let shell = 0;
for (const file of shellFiles) {
  const size = await gzipped(file);
  shell += size;
  console.log(`shell  ${kib(size).padStart(10)}  ${file}`);
}
let lazy = 0;
const assets = await readdir(new URL('assets/', dist));
for (const name of assets.filter((file) => file.endsWith('.js')).sort()) {
  if (!shellFiles.has(`assets/${name}`)) {
    lazy += await gzipped(`assets/${name}`);
  }
}
console.log(`shell JavaScript, gzipped: ${kib(shell)} (budget ${kib(SHELL_BUDGET_BYTES)})`);
console.log(`lazily loaded JavaScript, gzipped: ${kib(lazy)}`);
if (shell > SHELL_BUDGET_BYTES) {
  console.error('the shell is over its budget');
  process.exit(1);
}
