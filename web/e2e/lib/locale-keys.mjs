// The message keys of the console's locale files (web/src/locales/<language>/*.ts), compiled with
// the TypeScript of web/node_modules. A page that shows one of these keys, or any dotted name
// under one of their top-level sections, shows an untranslated message.

import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { REPO_ROOT } from '../harness/ha-setup.mjs';

const LOCALES = join(REPO_ROOT, 'web', 'src', 'locales');

async function loadLocale(language) {
  const require = createRequire(join(REPO_ROOT, 'web', 'package.json'));
  const ts = require('typescript');
  const out = mkdtempSync(join(tmpdir(), `kuboard-locale-${language}-`));
  try {
    for (const file of readdirSync(join(LOCALES, language)).filter((name) => name.endsWith('.ts'))) {
      const source = readFileSync(join(LOCALES, language, file), 'utf8');
      const { outputText } = ts.transpileModule(source, {
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
      });
      const relinked = outputText.replace(/from '(\.\/[^']+)'/g, "from '$1.mjs'");
      writeFileSync(join(out, file.replace(/\.ts$/, '.mjs')), relinked);
    }
    const module = await import(pathToFileURL(join(out, 'index.mjs')).href);
    return module.default;
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

function flatten(messages, prefix = '', keys = []) {
  for (const [name, value] of Object.entries(messages)) {
    const key = prefix ? `${prefix}.${name}` : name;
    if (value && typeof value === 'object') flatten(value, key, keys);
    else keys.push(key);
  }
  return keys;
}

/** `{ keys, sections, messages }` of one language ('en' or 'zh-CN'). */
export async function localeKeys(language) {
  const messages = await loadLocale(language);
  return { keys: flatten(messages), sections: Object.keys(messages), messages };
}

/** The raw keys a text shows: known keys, or dotted names under a known top-level section. */
export function rawKeysIn(text, { keys, sections }) {
  const found = new Set(keys.filter((key) => key.includes('.') && text.includes(key)));
  const pattern = new RegExp(
    `(?<![\\w./-])(?:${sections.join('|')})\\.[A-Za-z][\\w]*(?:\\.[A-Za-z][\\w]*)*`,
    'g',
  );
  for (const match of text.matchAll(pattern)) found.add(match[0]);
  return [...found];
}
